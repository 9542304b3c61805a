"""Publishing source records: validate, serialise, send with a bounded in-flight window, track offsets.

Invariant 4: a record is validated against its topic's schema before anything is sent; an invalid one is
counted (``schema_validation_failures``) and never published. Invariant 1: an offset is released for
``commit()`` only once its record and every earlier one of its offset partition is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from danube_connect_core.config import ConnectorConfig
from danube_connect_core.errors import Fatal, InvalidData, Retryable
from danube_connect_core.metrics import ConnectorMetrics
from danube_connect_core.offset_tracker import OffsetTracker
from danube_connect_core.producer_config import ProducerConfig
from danube_connect_core.records import SourceEnvelope, SourceRecord
from danube_connect_core.schema_codec import PayloadCodec, SchemalessCodec
from danube_connect_core.schema_registration import resolve_schema

__all__ = ["Published", "Publisher"]

log = logging.getLogger("danube_connect.source")


@dataclass(frozen=True, slots=True)
class Published:
    """A record the broker acknowledged: the partition topic it went to and the producer's sequence."""

    topic: str
    partition: int | None
    sequence: int


@dataclass
class _Route:
    producer: Any
    codec: PayloadCodec
    window: asyncio.Semaphore


class Publisher:
    """Owns the producers of a source. ``publish`` resolves on the broker's ack.

    Errors raised by :meth:`publish`: InvalidData (the record does not fit its schema; nothing was sent),
    Retryable (the broker did not acknowledge after the client's retries; the record may be sent again),
    Fatal (the topic cannot be used at all, e.g. its schema cannot be registered).
    """

    def __init__(self, client: Any, config: ConnectorConfig, metrics: ConnectorMetrics) -> None:
        self._client = client
        self._config = config
        self._metrics = metrics
        self._routes: dict[str, _Route] = {}
        self._creating: dict[str, asyncio.Task[_Route]] = {}
        self.offsets = OffsetTracker()
        self.inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.on_broker_state: Any = None

    async def add_topic(self, pc: ProducerConfig) -> None:
        if pc.topic in self._routes:
            return
        task = self._creating.get(pc.topic)
        if task is None:
            task = asyncio.ensure_future(self._create(pc))
            self._creating[pc.topic] = task
        try:
            await task
        finally:
            self._creating.pop(pc.topic, None)

    async def _create(self, pc: ProducerConfig) -> _Route:
        from danube_connect_core.client import DanubeError

        mapping = pc.schema_config or self._config.schema_for(pc.topic)
        reference = None
        codec: PayloadCodec = SchemalessCodec()
        if mapping is not None:
            resolved = await resolve_schema(self._client, mapping)
            reference, codec = resolved.reference, resolved.codec
        window = pc.max_in_flight or self._config.processing.max_in_flight
        name = f"{self._config.connector_name}-{re.sub(r'[^A-Za-z0-9]+', '-', pc.topic).strip('-')}"
        try:
            producer = await self._client.create_producer(
                pc.topic,
                name,
                partitions=pc.partitions,
                reliable=pc.reliable_dispatch,
                schema=reference,
                max_in_flight=window,
            )
        except DanubeError as exc:
            raise Fatal(f"cannot create a producer for {pc.topic}: {exc}") from exc
        self._metrics.declare_topic(pc.topic)
        route = _Route(producer, codec, asyncio.Semaphore(window * max(1, pc.partitions or 1)))
        self._routes[pc.topic] = route
        return route

    def encode(self, record: SourceRecord) -> bytes:
        """Validate and serialise (raises InvalidData, counted as a schema validation failure)."""
        route = self._routes.get(record.topic)
        codec = route.codec if route is not None else SchemalessCodec()
        try:
            return codec.encode(record)
        except InvalidData:
            self._metrics.schema_validation_failures.labels(self._metrics.connector, record.topic).inc()
            self._metrics.error(record.topic, "schema_validation")
            raise

    async def publish(self, item: SourceRecord | SourceEnvelope) -> Published:
        from danube_connect_core.client import DanubeError

        envelope = SourceEnvelope.of(item)
        record = envelope.record
        if record.topic not in self._routes:
            await self.add_topic(ProducerConfig(record.topic))
        route = self._routes[record.topic]
        c = self._metrics.connector
        self._metrics.received.labels(c, record.topic).inc()
        ticket = self.offsets.track(envelope.offset) if envelope.offset is not None else None
        try:
            payload = self.encode(record)
        except InvalidData:
            if ticket is not None and self._config.errors.tolerance == "all":
                # Rejected for good: it will never be published, so it must not hold back later offsets.
                self.offsets.done(ticket)
            raise
        gauge = self._metrics.inflight.labels(c, record.topic)
        self._enter()
        gauge.inc()
        started = time.perf_counter()
        try:
            async with route.window:
                mid = await route.producer.send(
                    payload, attributes=dict(record.attributes) or None, key=record.key
                )
        except DanubeError as exc:
            self._metrics.error(record.topic, "publish")
            if self.on_broker_state is not None:
                self.on_broker_state(False, str(exc))
            raise Retryable(f"publish to {record.topic} failed: {exc}") from exc
        finally:
            gauge.dec()
            self._leave()
        self._metrics.processing_duration.labels(c, record.topic).observe(time.perf_counter() - started)
        self._metrics.sent.labels(c, record.topic).inc()
        if self.on_broker_state is not None:
            self.on_broker_state(True, "")
        if ticket is not None:
            self.offsets.done(ticket)
        return Published(mid.topic, mid.partition, mid.offset)

    def _enter(self) -> None:
        self.inflight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return when no publish is in flight."""
        await self._idle.wait()

    async def close(self) -> None:
        for route in self._routes.values():
            try:
                await route.producer.close()
            except Exception as exc:  # closing is best effort; everything was acknowledged already
                log.debug("closing producer: %s", exc)
        self._routes.clear()
