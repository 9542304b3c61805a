"""Helpers of the conformance suite: the target broker from the environment, bounded waits, status codes.

The environment variables are described in conftest.py and README.md.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from danube_connect_core.client import ClientOptions, Consumer, DanubeClient, ReceivedMessage, RetryPolicy
from danube_embedded_broker.testing import StubClient

ENV_SERVICE = "DANUBE_CONFORMANCE_SERVICE_URL"
ENV_ADMIN = "DANUBE_CONFORMANCE_ADMIN_URL"
ENV_RESTART = "DANUBE_CONFORMANCE_RESTART_CMD"
ENV_PEERS = "DANUBE_CONFORMANCE_PEER_URLS"
ENV_NAMESPACE = "DANUBE_CONFORMANCE_NAMESPACE"
ENV_ACK_TIMEOUT = "DANUBE_CONFORMANCE_ACK_TIMEOUT_S"
ENV_MAX_UNACKED = "DANUBE_CONFORMANCE_MAX_UNACKED"
ENV_SETTLE = "DANUBE_CONFORMANCE_SETTLE_S"

#: Danube 0.15 flushes its WAL every 5 s (storage.wal file_sync interval_ms) and a restart loses what
#: was not flushed yet; the restart cases wait this long first on an external broker.
EXTERNAL_SETTLE_S = 6.0

#: Settings of the embedded default: Danube's defaults except a short ack timeout (keeps CI quick).
EMBEDDED_ACK_TIMEOUT_S = 2.0
EMBEDDED_MAX_UNACKED = 10

#: Generous bound of every wait for something that should happen (never a speed requirement).
WAIT_S = 60.0


@dataclass
class Target:
    """The broker under test and what the suite knows about its configuration."""

    service_url: str
    admin_url: str | None
    namespace: str
    ack_timeout_s: float
    max_unacked: int
    embedded: bool
    restart: Callable[[], None] | None = None
    peer_urls: list[str] = field(default_factory=list)
    settle_s: float = 0.0
    """How long the restart cases wait after the last send before restarting the broker."""

    def topic(self, label: str) -> str:
        """A fresh topic name in the suite's namespace (each test uses its own topics)."""
        return f"/{self.namespace}/conf-{label}-{uuid.uuid4().hex[:10]}"

    def client(self, url: str | None = None, max_retries: int = 8) -> DanubeClient:
        """Our client with a retry budget that rides out a broker restart."""
        options = ClientOptions(
            retry=RetryPolicy(max_retries=max_retries, base_backoff_ms=200, max_backoff_ms=3000),
            health_interval_s=2.0,
        )
        return DanubeClient(url or self.service_url, options)


def _wait_serving(url: str, timeout_s: float = WAIT_S) -> None:
    """Block until ``url`` answers a gRPC call (any status but UNAVAILABLE counts as serving)."""

    async def probe() -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            async with StubClient(url) as stub:
                try:
                    await asyncio.wait_for(stub.lookup("/default/conformance-probe"), 5)
                    return
                except grpc.aio.AioRpcError as err:
                    if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        return
                except TimeoutError:
                    pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"broker at {url} is not serving after {timeout_s}s")
            await asyncio.sleep(0.5)

    asyncio.run(probe())


def external_target(url: str) -> Target:
    command = os.environ.get(ENV_RESTART, "").strip()
    restart: Callable[[], None] | None = None
    if command:

        def restart() -> None:
            subprocess.run(shlex.split(command), check=True, timeout=300)
            _wait_serving(url)

    peers = [p.strip().rstrip("/") for p in os.environ.get(ENV_PEERS, "").split(",") if p.strip()]
    return Target(
        service_url=url.rstrip("/"),
        admin_url=os.environ.get(ENV_ADMIN) or None,
        namespace=os.environ.get(ENV_NAMESPACE, "default"),
        ack_timeout_s=float(os.environ.get(ENV_ACK_TIMEOUT, "30")),
        max_unacked=int(os.environ.get(ENV_MAX_UNACKED, "10")),
        embedded=False,
        restart=restart,
        peer_urls=peers,
        settle_s=float(os.environ.get(ENV_SETTLE, str(EXTERNAL_SETTLE_S))),
    )


async def receive(consumer: Consumer, wait_s: float = WAIT_S) -> ReceivedMessage:
    """The next message; fails the test (TimeoutError) only after ``wait_s``."""
    return await asyncio.wait_for(consumer.receive(), wait_s)


async def receive_n(
    consumer: Consumer, count: int, wait_s: float = WAIT_S, ack: bool = True
) -> list[ReceivedMessage]:
    """``count`` messages (acked unless ``ack=False``)."""
    out: list[ReceivedMessage] = []
    for _ in range(count):
        message = await receive(consumer, wait_s)
        if ack:
            assert await consumer.ack(message)
        out.append(message)
    return out


async def nothing_within(consumer: Consumer, quiet_s: float) -> bool:
    """True when no message arrives within ``quiet_s`` (a bound that can only err towards passing)."""
    try:
        await asyncio.wait_for(consumer.receive(), quiet_s)
    except TimeoutError:
        return True
    return False


async def status_of(call: Awaitable[Any]) -> grpc.StatusCode:
    """The gRPC status ``call`` ends with (OK when it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def owned_topic(target: Target, label: str, reliable: bool = True) -> tuple[str, str]:
    """A new topic created through our client (which follows lookups); returns (topic, owner URL).

    Raw-stub cases talk to the owner: in a cluster, the other brokers answer CreateProducer for a topic
    they do not serve with UNAVAILABLE ("served by another broker, redo the Lookup request").
    """
    topic = target.topic(label)
    async with target.client() as client:
        await client.create_producer(topic, "seed", reliable=reliable)
    async with StubClient(target.service_url) as stub:
        answer = await stub.lookup(topic)
    return topic, str(answer.connect_url).rstrip("/")


async def create_producer(stub: StubClient, topic: str, name: str = "p", reliable: bool = True) -> int:
    """Raw CreateProducer as our client does it: UNAVAILABLE is retried (a bounded number of times).

    A real Danube broker answers the first CreateProducer of a new topic with UNAVAILABLE ("The topic
    metadata was created, need to redo the lookup to find the correct broker"); the retry succeeds.
    """
    for attempt in range(20):
        try:
            return await stub.create_producer(topic, name, reliable=reliable)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE or attempt == 19:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")
