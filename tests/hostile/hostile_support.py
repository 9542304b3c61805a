"""Shared helpers of the hostile-input tests: reproducible hypothesis settings, example collection, raw
HTTP over a socket, and a topic reader that counts what really reached Danube.

Imported relatively by the tests beside it (``from .hostile_support import ...``).

Reproducibility: every property here runs with ``derandomize=True`` and no example database, so a CI
run and a local run see the same examples. ``HOSTILE_RANDOM=1`` explores with fresh random examples
(locally, to look for new failures; a failure found that way is pasted as an explicit case).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
PAYMENT_SCHEMA = REPO / "schemas" / "payment.json"
CI = os.environ.get("CI") == "true"
RANDOM = os.environ.get("HOSTILE_RANDOM") == "1" and not CI

T = TypeVar("T")


def hostile_settings(max_examples: int) -> settings:
    """Bounded, deadline-free, reproducible (derandomized, no database) unless HOSTILE_RANDOM=1."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def collect(strategy: st.SearchStrategy[T], n: int) -> list[T]:
    """``n`` examples of ``strategy`` drawn by hypothesis (sent afterwards to one running process, since
    an example does not need a fresh connector)."""
    out: list[T] = []

    @hostile_settings(n)
    @given(strategy)
    def run(value: T) -> None:
        out.append(value)

    run()
    return out


def payment(i: int, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event": "payment.succeeded",
        "amount": 100 + i,
        "currency": "USD",
        "timestamp": 1_705_000_000 + i,
    }
    doc.update(overrides)
    return doc


def payment_schema(topic: str, subject: str) -> dict[str, Any]:
    return {
        "topic": topic,
        "subject": subject,
        "schema_type": "json_schema",
        "schema_file": str(PAYMENT_SCHEMA),
    }


# -- raw HTTP ------------------------------------------------------------------------------------------


@dataclass
class RawAnswer:
    status: int | None  # None: the server closed without an answer
    head: bytes
    body: bytes


async def read_answer(reader: asyncio.StreamReader, within: float = 30.0) -> RawAnswer:
    """One HTTP/1.1 response (status line, headers, Content-Length body) or status None on close."""
    async with asyncio.timeout(within):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            partial = exc.partial if isinstance(exc, asyncio.IncompleteReadError) else b""
            return RawAnswer(None, partial, b"")
        status_line = head.split(b"\r\n", 1)[0]
        status = int(status_line.split(b" ")[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = b""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            body = await reader.readexactly(length)
        return RawAnswer(status, head, body)


async def raw_request(port: int, data: bytes, within: float = 30.0) -> RawAnswer:
    """Write ``data`` as it is on a new connection and read one answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return await read_answer(reader, within)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# -- reading a topic back ---------------------------------------------------------------------------


@dataclass
class TopicReader:
    """A Shared subscription opened before anything is sent (subscriptions start at the latest offset).

    It receives and acks in the background from the start, so nothing waits past the broker's ack
    timeout (a message held unacked that long is redelivered: at-least-once, not a second publish).
    :attr:`messages` are the distinct messages by (partition, offset); :attr:`deliveries` counts all.
    """

    client: Any
    consumer: Any
    messages: list[Any] = field(default_factory=list)
    deliveries: int = 0
    _seen: set[tuple[Any, int]] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while True:
            msg = await self.consumer.receive()
            await self.consumer.ack(msg)
            self.deliveries += 1
            ident = (msg.topic, msg.offset)
            if ident not in self._seen:
                self._seen.add(ident)
                self.messages.append(msg)
                self._changed.set()

    async def until(self, done: Callable[[list[Any]], bool], within: float = 60.0) -> list[Any]:
        async with asyncio.timeout(within):
            while not done(self.messages):
                assert self._task is not None and not self._task.done(), "reader stopped"
                self._changed.clear()
                await self._changed.wait()
        return self.messages

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def payloads(self) -> list[Any]:
        return [orjson.loads(m.payload) for m in self.messages]


@contextlib.asynccontextmanager
async def topic_reader(service_url: str, topic: str, subscription: str) -> AsyncIterator[TopicReader]:
    from danube_connect_core.client import DanubeClient

    client = DanubeClient(service_url)
    try:
        consumer = await client.subscribe(topic, subscription, consumer_name=f"{subscription}-c")
        reader = TopicReader(client, consumer)
        reader.start()
        try:
            yield reader
        finally:
            await reader.stop()
    finally:
        with contextlib.suppress(Exception):
            await client.close()
