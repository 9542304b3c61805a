"""Helpers for the CDC tests: create topics, collect messages in the background, build configs."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from danube_connect_core.client import DanubeClient
from danube_connect_core.testing.waits import wait_for_status
from danube_source_postgres_cdc.settings import PostgresSettings


@dataclass
class Collector:
    """Subscribes to topics (creating them first) and keeps every received event, in arrival order."""

    url: str
    topics: dict[str, int | None]
    events: list[dict[str, Any]] = field(default_factory=list)
    _client: Any = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> Collector:
        self._client = DanubeClient(self.url)
        for topic, partitions in self.topics.items():
            producer = await self._client.create_producer(
                topic, "test-topic-creator", partitions=partitions, reliable=True
            )
            await producer.close()
            consumer = await self._client.subscribe(topic, "test-collector", consumer_name="collector")
            self._tasks.append(asyncio.create_task(self._run(consumer)))
        return self

    async def _run(self, consumer: Any) -> None:
        while True:
            msg = await consumer.receive()
            event = orjson.loads(msg.payload)
            event["_key"] = msg.routing_key
            event["_partition"] = msg.partition
            self.events.append(event)
            await consumer.ack(msg)
            self._changed.set()

    async def wait_for(self, count: int, within: float = 60.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(within):
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events

    async def settle(self, quiet: float = 1.0) -> None:
        """Wait until nothing new arrived for ``quiet`` seconds (to catch extra deliveries)."""
        while True:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), quiet)
            except TimeoutError:
                return

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        if self._client is not None:
            await self._client.close()


async def take_raw(consumer: Any, count: int, within: float = 60.0) -> list[Any]:
    """Receive and ack ``count`` messages as they are (payload bytes, attributes, routing key)."""
    got: list[Any] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            msg = await consumer.receive()
            await consumer.ack(msg)
            got.append(msg)
    return got


def settings(dsn: str, mappings: list[dict[str, Any]], **extra: Any) -> PostgresSettings:
    data: dict[str, Any] = {"dsn": dsn, "table_mappings": mappings, "poll_interval_ms": 20, **extra}
    return PostgresSettings.model_validate(data)


async def wait_ready(port: int, within: float = 30.0) -> None:
    """Until the connector's /ready answers 200 (initialized, producers created)."""
    await wait_for_status(port, within=within)
