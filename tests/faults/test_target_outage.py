"""A 20 s target outage under every sink, while records flow: retried, not-ready, nothing lost or
dead-lettered.

For each sink (surrealdb, delta-lake, qdrant, clickhouse, http) as a real ``danube-connect run`` process on
a reliable topic of 4 partitions: records are produced continuously; the target becomes unavailable for
20 s, then comes back, and the stream goes on. The outages are real faults:

- http: the target server stops (its port is closed: connection refused), then listens again on the same
  port with the same state;
- delta-lake: the table lives on S3 (moto_server) behind a TCP proxy that refuses connections for 20 s
  (a restarted moto_server would lose its in-memory bucket; the proxy cuts the network instead);
- surrealdb (surrealkv), qdrant (local mode), clickhouse (chdb): the engine runs inside the sink process,
  so its outage is its storage failing. The store lives on a small tmpfs that is filled to ENOSPC for
  20 s, then freed. (A read-only remount is not possible here: the kernel refuses ``remount,ro`` while a
  file is open for writing, and each of these engines keeps one open: surrealkv its commit log, qdrant its
  SQLite file, chdb its status file.)

Proved for each sink, exactly:

- while the target fails, the sink retries (``danube_connector_retries_total`` grows, one "write to target
  failed" log line per retry), ``GET /ready`` answers 503 from the first failed write until the target is
  back, and the process does not exit;
- after recovery ``/ready`` answers 200 again, the subscription drains, SIGTERM exits 0;
- the target holds exactly the records produced, each once (every sink is idempotent; the http target
  de-duplicates on the Idempotency-Key, and each record carried one stable key);
- nothing was dead-lettered: ``danube_connector_dead_lettered_total`` is 0 and the dead-letter topic holds
  no message (invariant 5: a target outage is not poison).

The ``[retry]`` setting that makes a sink wait out an outage: ``max_retries = 1000``,
``retry_backoff_ms = 100``, ``max_backoff_ms = 1000`` - attempts at most ~1 s apart (equal jitter: 0.5 to
1 s) for at least ~8 min, so a 20 s outage is ridden out with a wide margin. With the default budget (3
retries from 1 s) a sink exits 1 after a few seconds instead, without acking (by design: the broker
redelivers to the next process).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from danube_connect_core.client import DanubeClient
from danube_connect_core.testing import ConnectorProcess, http_get, produce
from sink_cases import (
    CASES,
    PARTITIONS,
    WINDOW,
    DeltaLakeTarget,
    HttpTarget,
    SinkCase,
    SinkTarget,
    assert_exactly_once,
    backlog,
    payload,
    start_ready,
    wait_until,
)
from storage_faults import mounted_tmpfs, require_mount_capability

# The Delta Lake tests' moto_server helper.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "connectors" / "delta-lake" / "tests"))
from moto_s3 import moto_s3  # type: ignore[import-not-found]

pytestmark = pytest.mark.slow

TOPIC = "/default/faults-outage"
SUBSCRIPTION = "faults-outage"
OUTAGE_S = 20.0
#: Long enough to ride out the outage many times over, with attempts at most 1 s apart.
RETRY = {"max_retries": 1000, "retry_backoff_ms": 100, "max_backoff_ms": 1000}
#: The continuous stream: CHUNK records every INTERVAL_S seconds.
CHUNK = 40
INTERVAL_S = 0.5
#: A sink answers /ready and /metrics at once; this only covers a machine busy with other work.
PROBE_TIMEOUT_S = 30.0
#: The tmpfs under an in-process engine's store (chdb needs a few MiB of its own to start).
STORE_BYTES = 64 * 1024 * 1024


# -- outages -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outage:
    """How a target goes away (``begin``) and comes back (``end``)."""

    description: str
    begin: Callable[[], Awaitable[object]]
    end: Callable[[], Awaitable[object]]


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in the test's event loop, forwarding to ``upstream_port``.

    :meth:`refuse` closes the listening socket (new connections are refused) and aborts every open one;
    :meth:`start` listens again on the same port.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def refuse(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()
        await self._server.wait_closed()
        self._server = None

    async def stop(self) -> None:
        if self._server is not None:
            await self.refuse()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}


class S3DeltaLakeTarget(DeltaLakeTarget):
    """The Delta table ``s3://lake/faults`` on moto_server; the sink reaches S3 through ``sink_endpoint``
    (the proxy), the test reads the table from moto_server directly."""

    def __init__(self, root: Path, s3_env: dict[str, str], sink_endpoint: str) -> None:
        super().__init__(root)
        self.s3_env = s3_env
        self.env.update({**s3_env, "AWS_ENDPOINT_URL": sink_endpoint})

    def section(self) -> dict[str, Any]:
        return {"table_root": "s3://lake"}

    def _read(self) -> list[int]:
        from deltalake import DeltaTable

        uri = f"s3://lake/{self.table.name}"
        if not DeltaTable.is_deltatable(uri, storage_options=self.s3_env):
            return []
        table = DeltaTable(uri, storage_options=self.s3_env)
        return [int(i) for i in table.to_pyarrow_table(columns=["i"]).column("i").to_pylist()]


@contextlib.asynccontextmanager
async def target_with_outage(case: SinkCase, root: Path) -> AsyncIterator[tuple[SinkTarget, Outage]]:
    """The case's target under ``root`` and the outage that takes it away; all torn down on exit."""
    if case.name == "http":
        async with case.open_target(root) as target:
            assert isinstance(target, HttpTarget)
            yield target, Outage("the HTTP target refuses connections", target.stop, target.start)
    elif case.name == "delta-lake":
        with moto_s3("lake") as s3_env:
            proxy = TcpProxy(int(s3_env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]))
            await proxy.start()
            try:
                target = S3DeltaLakeTarget(root, s3_env, f"http://127.0.0.1:{proxy.port}")
                yield target, Outage("S3 refuses connections", proxy.refuse, proxy.start)
            finally:
                await proxy.stop()
    else:
        require_mount_capability()
        with mounted_tmpfs(root, STORE_BYTES) as disk:
            async with case.open_target(root) as target:
                fill, free = partial(asyncio.to_thread, disk.fill), partial(asyncio.to_thread, disk.free)
                yield target, Outage("the store's disk is full (ENOSPC)", fill, free)


# -- the stream and the sink's surface ---------------------------------------------------------------


class Flow:
    """Records ``0, 1, 2 ...`` produced continuously (CHUNK every INTERVAL_S) until :meth:`stop`."""

    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self.produced = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> int:
        """Stop after the chunk under way; returns how many records the broker acknowledged."""
        self._stop.set()
        assert self._task is not None
        await self._task
        return self.produced

    def stopped(self) -> bool:
        return self._task is None or self._task.done()

    async def _run(self) -> None:
        client = DanubeClient(self.broker_url)
        try:
            producer = await client.create_producer(
                TOPIC, "outage-flow", partitions=PARTITIONS, reliable=True, max_in_flight=16
            )
            while not self._stop.is_set():
                ids = range(self.produced, self.produced + CHUNK)
                await asyncio.gather(*(producer.send(orjson.dumps(payload(i))) for i in ids))
                self.produced = ids.stop
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), INTERVAL_S)
            await producer.close()
        finally:
            await client.close()


async def ready_status(port: int) -> tuple[int, str]:
    return await asyncio.to_thread(http_get, port, "/ready", PROBE_TIMEOUT_S)


async def metric(port: int, name: str) -> float:
    """Sum of a running sink's metric over its labels (0 when absent)."""
    status, text = await asyncio.to_thread(http_get, port, "/metrics", PROBE_TIMEOUT_S)
    assert status == 200, text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def stored_messages(broker: Any, topic: str) -> int | None:
    """Messages stored on ``topic`` (all partitions) of an in-process broker; None when it does not exist."""
    logs = [
        t.log
        for name, t in broker.core.topics.items()
        if (name == topic or name.startswith(f"{topic}-part-")) and t.log is not None
    ]
    return sum(log.next_offset for log in logs) if logs else None


def retry_lines(proc: ConnectorProcess) -> list[str]:
    return [line for line in proc.lines if "write to target failed" in line]


async def sample_until(
    deadline: float, probe: Callable[[], Awaitable[tuple[int, str]]], proc: ConnectorProcess
) -> list[tuple[int, str]]:
    """``probe`` every 0.25 s until ``deadline`` (monotonic); fails at once when ``proc`` exits."""
    samples: list[tuple[int, str]] = []
    while time.monotonic() < deadline:
        assert proc.proc is not None and proc.proc.poll() is None, (
            f"the sink exited {proc.proc and proc.proc.returncode} during the outage:\n{proc.log_tail()}"
        )
        samples.append(await probe())
        await asyncio.sleep(0.25)
    return samples


# -- the test ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_target_outage_of_20s_is_retried_not_ready_and_loses_nothing(
    case: SinkCase, broker_factory: Any, tmp_path: Path
) -> None:
    # A long ack timeout: redeliveries come only from the outage, not from a slow batch on a busy machine.
    broker = await broker_factory(max_unacked_messages=WINDOW, ack_timeout_ms=120_000)
    async with target_with_outage(case, tmp_path / "target") as (target, outage):
        config = target.write_config(broker.url, TOPIC, SUBSCRIPTION, retry=RETRY)
        dlq_topic = f"/default/faults-{target.section_name}-dlq"
        await produce(broker.url, TOPIC, [], partitions=PARTITIONS)  # the topic, so the sink can subscribe
        # Rust panics (delta-rs's object_store on a refused connection) in their one-line form.
        proc = ConnectorProcess(case.name, config, env={**target.env, "RUST_BACKTRACE": "0"})
        flow = Flow(broker.url)
        try:
            port = await start_ready(proc)
            flow.start()

            async def some_written() -> bool:
                return await metric(port, "danube_connector_messages_sent_total") >= 2 * CHUNK

            await wait_until(some_written, "records flowing into the target", within=60, proc=proc)
            retries_before = await metric(port, "danube_connector_retries_total")
            assert retries_before == 0, proc.log_tail()

            began = time.monotonic()
            await outage.begin()

            async def not_ready() -> bool:
                return (await ready_status(port))[0] == 503

            await wait_until(not_ready, f"/ready 503 once {outage.description}", within=60, proc=proc)
            # From the first failed write until the target is back: never ready, never exited.
            during = await sample_until(began + OUTAGE_S, lambda: ready_status(port), proc)
            assert [s for s, _ in during if s != 503] == [], (during, proc.log_tail())
            retried = await metric(port, "danube_connector_retries_total")
            assert retried >= 2, f"{retried} retries during the outage:\n{proc.log_tail()}"
            assert len(retry_lines(proc)) >= 2, proc.log_tail()
            await outage.end()

            async def ready() -> bool:
                return (await ready_status(port))[0] == 200

            await wait_until(ready, "/ready 200 after the target came back", within=60, proc=proc)
            produced = await flow.stop()

            async def drained() -> bool:
                return backlog(broker, TOPIC, SUBSCRIPTION) == 0

            await wait_until(drained, f"all {produced} records written", within=120, proc=proc)
            assert await metric(port, "danube_connector_dead_lettered_total") == 0, proc.log_tail()
            retries = await metric(port, "danube_connector_retries_total")
            proc.signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 60.0)
            assert code == 0, f"exit {code} after SIGTERM:\n{proc.log_tail()}"
        finally:
            proc.kill()
            if not flow.stopped():
                await flow.stop()
        # The sink creates its dead-letter topic at start, so this is not vacuous: the topic exists, empty.
        assert stored_messages(broker, dlq_topic) == 0
        # One log line per retry: nothing retried silently, nothing logged without a retry.
        assert len(retry_lines(proc)) == retries, proc.log_tail()
        assert_exactly_once(await target.stored_ids(), produced, idempotent=case.idempotent)
        if isinstance(target, HttpTarget):
            target.assert_stable_keys(produced)
