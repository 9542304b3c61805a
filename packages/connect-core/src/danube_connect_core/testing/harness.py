"""Run connectors against an embedded broker, in-process or as real processes, and look at the result."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from danube_connect_core import exact_json
from danube_connect_core.config import ConnectorConfig
from danube_connect_core.connector import SinkConnector, SourceConnector

__all__ = [
    "ConnectorProcess",
    "RunningRuntime",
    "consume",
    "embedded_broker",
    "http_get",
    "make_config",
    "process_env",
    "produce",
    "start_runtime",
]


@contextlib.asynccontextmanager
async def embedded_broker(data_dir: Path | None = None, **overrides: Any) -> AsyncIterator[str]:
    """An in-process embedded broker; yields its service URL.

    Needs the ``testing`` extra (``danube-connect-core[testing]``), which installs ``danube-embedded-broker``.
    """
    from danube_embedded_broker import BrokerConfig, EmbeddedBroker

    settings: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "data_dir": data_dir, "fsync": "never"}
    settings.update(overrides)
    broker = EmbeddedBroker(BrokerConfig(**settings))
    url = await broker.start()
    try:
        yield url
    finally:
        await broker.stop()


def make_config(
    service_url: str, connector_name: str, settings: Any = None, **sections: Any
) -> ConnectorConfig:
    """A core config built in code (``processing={"metrics_port": 0}`` style overrides)."""
    data: dict[str, Any] = {"danube_service_url": service_url, "connector_name": connector_name}
    data.setdefault("processing", {"metrics_port": 0})
    for key, value in sections.items():
        data[key] = value
    if isinstance(data.get("processing"), dict):
        data["processing"].setdefault("metrics_port", 0)
    return ConnectorConfig.model_validate(data).with_settings(settings)


@dataclass
class RunningRuntime:
    """A runtime started in this event loop; :meth:`stop` drains it and returns the exit code."""

    runtime: Any
    task: asyncio.Task[int]
    stop_event: asyncio.Event

    @property
    def port(self) -> int:
        return int(self.runtime.port)

    async def wait_started(self, within: float = 60.0) -> None:
        """Return once the runtime is started: a source's producers exist and intake is open
        (``start_streaming`` returned or polling began); every consumer of a sink is subscribed, so
        records produced from now on reach it (a new subscription starts at the end of the topic).

        A sink whose topic does not exist yet starts only once it does. Raises RuntimeError if the
        runtime exits first (with its exit code), TimeoutError after ``within`` seconds.
        """
        started = asyncio.ensure_future(self.runtime.started.wait())
        try:
            done, _ = await asyncio.wait(
                {started, self.task}, timeout=within, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            started.cancel()
        if self.runtime.started.is_set():
            return
        if self.task in done:
            raise RuntimeError(f"the runtime exited (code {self.task.result()}) before it started")
        raise TimeoutError(f"the runtime did not start within {within} s")

    async def stop(self, within: float = 60.0) -> int:
        self.stop_event.set()
        return await asyncio.wait_for(asyncio.shield(self.task), within)

    async def wait(self, within: float = 60.0) -> int:
        return await asyncio.wait_for(asyncio.shield(self.task), within)


async def start_runtime(
    connector: SourceConnector | SinkConnector,
    config: ConnectorConfig,
    *,
    wait_started: bool = False,
    within: float = 60.0,
) -> RunningRuntime:
    """Start the right runtime for ``connector`` in a task.

    Returns once the metrics server is up (``port`` is known); with ``wait_started=True`` only once the
    runtime is started (see :meth:`RunningRuntime.wait_started`), so a test can produce to a sink or
    send through a source at once instead of polling /ready.
    """
    from danube_connect_core.sink_runtime import SinkRuntime
    from danube_connect_core.source_runtime import SourceRuntime

    runtime: Any
    if isinstance(connector, SinkConnector):
        runtime = SinkRuntime(connector, config)
    else:
        runtime = SourceRuntime(connector, config)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    async with asyncio.timeout(30):
        while runtime.port == 0 and not task.done():  # noqa: ASYNC110 - the port is a plain attribute
            await asyncio.sleep(0.01)
    running = RunningRuntime(runtime, task, stop)
    if wait_started:
        await running.wait_started(within)
    return running


async def produce(
    service_url: str,
    topic: str,
    payloads: Sequence[Any],
    *,
    partitions: int | None = None,
    reliable: bool = True,
    schema: Any = None,
    attributes: dict[str, str] | None = None,
    in_order: bool = False,
) -> list[Any]:
    """Publish JSON values (or bytes as they are) to ``topic``; returns the message ids.

    By default up to 16 are in flight at once, and the broker may store two that are in flight together in
    either order. ``in_order=True`` sends them one at a time, so each partition's offsets follow the list
    (for a test that asserts on offsets or on the order a sink sees).
    """
    from danube_connect_core.client import DanubeClient

    client = DanubeClient(service_url)
    try:
        producer = await client.create_producer(
            topic,
            "testing-producer",
            partitions=partitions,
            reliable=reliable,
            schema=schema,
            max_in_flight=1 if in_order else 16,
        )
        data = [p if isinstance(p, bytes) else exact_json.dumps(p) for p in payloads]
        if in_order:
            ids = [await producer.send(d, attributes=attributes) for d in data]
        else:
            ids = list(await asyncio.gather(*(producer.send(d, attributes=attributes) for d in data)))
        await producer.close()
        return ids
    finally:
        await client.close()


async def consume(
    service_url: str, topic: str, subscription: str, count: int, *, within: float = 30.0
) -> list[Any]:
    """Receive and ack ``count`` messages (TimeoutError when fewer arrive ``within`` seconds)."""
    from danube_connect_core.client import DanubeClient

    client = DanubeClient(service_url)
    out: list[Any] = []
    try:
        consumer = await client.subscribe(topic, subscription, consumer_name=f"testing-{subscription}")
        async with asyncio.timeout(within):
            while len(out) < count:
                msg = await consumer.receive()
                out.append(msg)
                await consumer.ack(msg)
        await consumer.close()
        return out
    finally:
        await client.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a server a test is about to start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 30.0) -> tuple[int, str]:
    """(status, body) of a GET on 127.0.0.1 (blocking; call through asyncio.to_thread in async code).

    The timeout is generous on purpose: a connector under test may be mid-write on a loaded 2-core machine,
    and a slow answer is not the failure a test is looking for."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def process_env(broker_url: str) -> dict[str, str]:
    """Environment for a :class:`ConnectorProcess` whose TOML names another broker (a shipped example):
    the broker's URL (``DANUBE_SERVICE_URL`` overrides ``danube_service_url``), metrics on a port the OS
    picks (logged as ``metrics_port``) and JSON logs, which the waits of :mod:`.waits` read."""
    return {"DANUBE_SERVICE_URL": broker_url, "METRICS_PORT": "0", "LOG_FORMAT": "json"}


@dataclass
class ConnectorProcess:
    """``danube-connect run CONNECTOR --config FILE`` as a real process (JSON logs on stderr)."""

    connector: str
    config_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    lines: list[str] = field(default_factory=list)
    _port: int | None = None
    _reader: threading.Thread | None = None

    def start(self) -> ConnectorProcess:
        code = "from danube_connect_core.cli import main; main()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "run", self.connector, "--config", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **self.env},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            if self._port is None and '"metrics_port"' in line:
                with contextlib.suppress(ValueError, KeyError):
                    self._port = int(json.loads(line)["metrics_port"])

    def metrics_port(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self._port is None:
            if time.monotonic() > deadline or (self.proc is not None and self.proc.poll() is not None):
                raise RuntimeError("connector did not report its metrics port:\n" + self.log_tail())
            time.sleep(0.02)
        return self._port

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, within: float = 60.0) -> int:
        """The exit code, once the process exited and :attr:`lines` holds everything it logged (the
        reader thread reached the end of its stderr), so a test can assert on its last lines."""
        assert self.proc is not None
        code = self.proc.wait(within)
        self._read_all()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._read_all()

    def _read_all(self, within: float = 10.0) -> None:
        """Let the reader thread take the exited process's last lines (bounded: a child that inherited
        stderr could hold it open)."""
        if self._reader is not None and self.proc is not None and self.proc.poll() is not None:
            self._reader.join(within)

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.lines[-n:])
