"""Read a topic back in a test: what really reached Danube, each stored message once.

:func:`topic_reader` (an async context manager) or :func:`open_topic_reader` (close it yourself)
subscribe before anything is sent: a new subscription starts at the latest offset, as on Danube.

Failure semantics: :meth:`TopicReader.until` raises TimeoutError when the condition does not hold within
its deadline, and AssertionError when the background receiver stopped (its consumer failed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from danube_connect_core.client import DanubeClient

__all__ = ["TopicReader", "open_topic_reader", "topic_reader"]


@dataclass
class TopicReader:
    """A subscription read by a background task that acks each message at once, so the broker's ack
    timeout never redelivers what the test is still looking at.

    :attr:`messages` keeps each (partition topic, offset) once, in arrival order: what is on the topic.
    :attr:`deliveries` counts every delivery, redeliveries included. Non-reliable topics carry no offsets
    (all 0) and are never redelivered: open those with ``dedupe=False``.
    """

    client: DanubeClient
    consumer: Any
    dedupe: bool = True
    messages: list[Any] = field(default_factory=list)
    deliveries: int = 0
    _seen: set[tuple[str, int]] = field(default_factory=set)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for msg in self.consumer:
            await self.consumer.ack(msg)
            self.deliveries += 1
            key = (msg.partition_topic, msg.offset)
            if not self.dedupe or key not in self._seen:
                self._seen.add(key)
                self.messages.append(msg)
                self._arrived.set()

    async def until(self, predicate: Callable[[list[Any]], bool], within: float = 60.0) -> list[Any]:
        """Wait until ``predicate(messages)`` holds; return the messages."""
        async with asyncio.timeout(within):
            while not predicate(self.messages):
                assert self._task is not None and not self._task.done(), "the reader stopped"
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages

    async def take(self, count: int, within: float = 60.0) -> list[Any]:
        """Wait until at least ``count`` messages arrived; return all of them."""
        return await self.until(lambda msgs: len(msgs) >= count, within)

    def payloads(self) -> list[Any]:
        """The messages' payloads parsed as JSON."""
        return [orjson.loads(m.payload) for m in self.messages]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.client.close()


async def open_topic_reader(
    service_url: str, topic: str, subscription: str = "test-reader", *, dedupe: bool = True
) -> TopicReader:
    """A started :class:`TopicReader` on ``topic``; :meth:`TopicReader.close` it."""
    client = DanubeClient(service_url)
    try:
        consumer = await client.subscribe(topic, subscription, consumer_name=f"{subscription}-c")
    except BaseException:
        await client.close()
        raise
    reader = TopicReader(client, consumer, dedupe)
    reader.start()
    return reader


@contextlib.asynccontextmanager
async def topic_reader(
    service_url: str, topic: str, subscription: str = "test-reader", *, dedupe: bool = True
) -> AsyncIterator[TopicReader]:
    """:func:`open_topic_reader` for the ``with`` block."""
    reader = await open_topic_reader(service_url, topic, subscription, dedupe=dedupe)
    try:
        yield reader
    finally:
        await reader.close()
