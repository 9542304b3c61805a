"""Test helpers: the broker as a real subprocess (SIGTERM/SIGKILL/restart tests) and a raw-stub client."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import grpc

from danube_embedded_broker.cli import READY_PREFIX
from danube_embedded_broker.wire import pb, pb_grpc


def _command() -> list[str]:
    script = Path(sys.executable).parent / "danube-embedded-broker"
    if script.exists():
        return [str(script)]
    found = shutil.which("danube-embedded-broker")
    return [found] if found else [sys.executable, "-m", "danube_embedded_broker"]


class BrokerProcess:
    """The ``danube-embedded-broker`` console script as a subprocess on ``127.0.0.1``.

    ``start()`` blocks until the ready line; a later ``start()`` after ``stop()``/``kill()`` reuses the
    same port and data dir, so clients can reconnect to the same URL. stderr goes to ``log_path``.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.args = tuple(args)
        self.env = dict(env) if env is not None else None
        self.url = f"http://127.0.0.1:{port}" if port else ""
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-broker.log"
        self._proc: subprocess.Popen[str] | None = None
        self._starts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> str:
        """Start and wait for the ready line; returns the URL.

        Raises ``RuntimeError`` (with the log tail) when the process exits or is not ready in time.
        """
        if self.running:
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [*_command(), "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        cmd += self.args
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        self._starts += 1
        with open(self.log_path, "a") as log:
            log.write(f"--- start #{self._starts}: {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, env=env
            )
        self._proc = proc
        ready = threading.Event()
        found: list[str] = []

        def read_stdout() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(READY_PREFIX) and not found:
                    found.append(line[len(READY_PREFIX) :].strip())
                    ready.set()
            ready.set()  # EOF: the process ended

        threading.Thread(target=read_stdout, name="broker-stdout", daemon=True).start()
        if not ready.wait(timeout) or not found:
            self.kill()
            raise RuntimeError(f"broker did not become ready within {timeout}s:\n{self.log_tail()}")
        self.url = found[0]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self.url

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL and ``-9`` if it does not exit in time)."""
        proc = self._proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL (no clean shutdown) and wait for the process to be gone."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._proc = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> BrokerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running:
            self.stop()


class StubClient:
    """Thin helper over the raw generated stubs (grpc.aio), for broker tests and diagnostics.

    Raises ``grpc.aio.AioRpcError`` exactly as the broker answers; no retries, no reconnects.
    """

    def __init__(self, url: str, token: str | None = None, max_message_bytes: int = 64 * 1024 * 1024) -> None:
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self.channel = grpc.aio.insecure_channel(url.removeprefix("http://"), options=options)
        self.metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        self.producer = pb_grpc.ProducerServiceStub(self.channel)  # type: ignore[no-untyped-call, unused-ignore]
        self.consumer = pb_grpc.ConsumerServiceStub(self.channel)  # type: ignore[no-untyped-call, unused-ignore]
        self.discovery = pb_grpc.DiscoveryStub(self.channel)  # type: ignore[no-untyped-call, unused-ignore]
        self.health_stub = pb_grpc.HealthCheckStub(self.channel)  # type: ignore[no-untyped-call, unused-ignore]
        self._request_id = 0

    def _rid(self) -> int:
        self._request_id += 1
        return self._request_id

    async def create_producer(
        self, topic: str, name: str = "producer", reliable: bool = True, **fields: Any
    ) -> int:
        strategy = pb.DispatchStrategy.Reliable if reliable else pb.DispatchStrategy.NonReliable
        request = pb.ProducerRequest(
            request_id=self._rid(), producer_name=name, topic_name=topic, dispatch_strategy=strategy, **fields
        )
        response = await self.producer.CreateProducer(request, metadata=self.metadata)
        return int(response.producer_id)

    async def send(self, producer_id: int, topic: str, payload: bytes, **fields: Any) -> None:
        message = pb.StreamMessage(
            request_id=self._rid(),
            msg_id=pb.MsgID(producer_id=producer_id, topic_name=topic),
            payload=payload,
            **fields,
        )
        await self.producer.SendMessage(message, metadata=self.metadata)

    async def subscribe(
        self,
        topic: str,
        subscription: str,
        name: str = "consumer",
        sub_type: int = pb.ConsumerRequest.SubscriptionType.Shared,
        key_filters: Sequence[str] = (),
    ) -> int:
        request = pb.ConsumerRequest(
            request_id=self._rid(),
            topic_name=topic,
            consumer_name=name,
            subscription=subscription,
            subscription_type=cast(Any, sub_type),
            key_filters=list(key_filters),
        )
        response = await self.consumer.Subscribe(request, metadata=self.metadata)
        return int(response.consumer_id)

    def receive(self, consumer_id: int) -> Any:
        """The ReceiveMessages call: ``await call.read()`` per message, ``call.cancel()`` to disconnect."""
        request = pb.ReceiveRequest(request_id=self._rid(), consumer_id=consumer_id)
        return self.consumer.ReceiveMessages(request, metadata=self.metadata)

    async def stream(self, consumer_id: int, wait_s: float = 10.0) -> Any:
        """Open ReceiveMessages and wait (at most ``wait_s``) until the broker has registered the stream."""
        call = self.receive(consumer_id)
        await asyncio.wait_for(call.initial_metadata(), wait_s)
        return call

    async def ack(self, message: Any, subscription: str | None = None) -> None:
        request = pb.AckRequest(
            request_id=self._rid(),
            msg_id=message.msg_id,
            subscription_name=subscription or message.subscription_name,
        )
        await self.consumer.Ack(request, metadata=self.metadata)

    async def nack(self, message: Any, delay_ms: int | None = None, reason: str | None = None) -> None:
        request = pb.NackRequest(
            request_id=self._rid(),
            msg_id=message.msg_id,
            subscription_name=message.subscription_name,
            delay_ms=delay_ms,
            reason=reason,
        )
        await self.consumer.Nack(request, metadata=self.metadata)

    async def lookup(self, topic: str) -> Any:
        request = pb.TopicLookupRequest(request_id=self._rid(), topic=topic)
        return await self.discovery.TopicLookup(request, metadata=self.metadata)

    async def partitions(self, topic: str) -> list[str]:
        request = pb.TopicLookupRequest(request_id=self._rid(), topic=topic)
        response = await self.discovery.TopicPartitions(request, metadata=self.metadata)
        return list(response.partitions)

    async def health(self, client: int, client_id: int) -> int:
        request = pb.HealthCheckRequest(request_id=self._rid(), client=cast(Any, client), id=client_id)
        response = await self.health_stub.HealthCheck(request, metadata=self.metadata)
        return int(response.status)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> StubClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def next_message(call: Any, wait_s: float = 10.0) -> Any:
    """Read one message from a ReceiveMessages call; ``asyncio.TimeoutError`` guards against hangs.

    Raises ``AssertionError`` when the stream ended instead.
    """
    message = await asyncio.wait_for(call.read(), wait_s)
    if message is grpc.aio.EOF:
        raise AssertionError("stream ended")
    return message
