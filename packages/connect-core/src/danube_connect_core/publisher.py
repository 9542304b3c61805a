"""Publishing source records: one attempt to validate, serialise and send a record, or its dead letter.

The policy around these attempts (the in-flight bound, retries, tolerance, offsets) lives in
:mod:`danube_connect_core.source_pipeline`; this module only talks to the broker.

Invariant 4: a record is validated against its topic's schema before anything is sent; an invalid one is
counted (``schema_validation_failures``) and never published to its topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from danube_connect_core.config import ConnectorConfig
from danube_connect_core.dead_letter import dead_letter_payload, source_dead_letter_attributes
from danube_connect_core.errors import DanubeError, Fatal, InvalidData, Retryable
from danube_connect_core.metrics import ConnectorMetrics
from danube_connect_core.producer_config import ProducerConfig
from danube_connect_core.records import SourceEnvelope, SourceRecord
from danube_connect_core.schema_codec import PayloadCodec, SchemalessCodec
from danube_connect_core.schema_registration import resolve_schema

__all__ = ["Published", "Publisher"]

log = logging.getLogger("danube_connect.source")


@dataclass(frozen=True, slots=True)
class Published:
    """A record the broker acknowledged: the partition topic it went to and the producer's sequence.

    ``dead_letter_reason`` is set when the record was invalid and what the broker acknowledged is its dead
    letter (``topic`` is then the dead-letter topic): the record is safely kept, but not on its topic.
    """

    topic: str
    partition: int | None
    sequence: int
    dead_letter_reason: str | None = None

    @property
    def dead_lettered(self) -> bool:
        return self.dead_letter_reason is not None


@dataclass
class _Route:
    producer: Any
    codec: PayloadCodec
    #: The topic's in-flight bound (records inside the delivery pipeline), held by SourcePipeline.
    bound: asyncio.Semaphore
    capacity: int
    #: The topic's metric children, looked up once (``labels()`` costs microseconds on every record).
    received: Any = None
    inflight: Any = None
    duration: Any = None
    sent: Any = None


class Publisher:
    """Owns the producers of a source. ``publish`` resolves on the broker's ack.

    Errors raised by :meth:`publish`: InvalidData (the record does not fit its schema; nothing was sent),
    Retryable (the broker did not acknowledge after the client's retries; the record may be sent again),
    Fatal (the topic cannot be used at all, e.g. its schema cannot be registered). :meth:`dead_letter`
    raises Retryable only.
    """

    def __init__(self, client: Any, config: ConnectorConfig, metrics: ConnectorMetrics) -> None:
        self._client = client
        self._config = config
        self._metrics = metrics
        self._routes: dict[str, _Route] = {}
        self._creating: dict[str, asyncio.Task[_Route]] = {}
        self._dlq: Any = None
        self._dlq_lock = asyncio.Lock()
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
        capacity = window * max(1, pc.partitions or 1)
        m, c = self._metrics, self._metrics.connector
        route = _Route(
            producer,
            codec,
            asyncio.Semaphore(capacity),
            capacity,
            received=m.received.labels(c, pc.topic),
            inflight=m.inflight.labels(c, pc.topic),
            duration=m.processing_duration.labels(c, pc.topic),
            sent=m.sent.labels(c, pc.topic),
        )
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

    def known_route(self, topic: str) -> _Route | None:
        """The topic's producer and bound if it was created already."""
        return self._routes.get(topic)

    async def route(self, topic: str) -> _Route:
        """The topic's producer and bound (a topic not declared in ``producer_configs`` is added now)."""
        route = self._routes.get(topic)
        if route is None:
            await self.add_topic(ProducerConfig(topic))
            route = self._routes[topic]
        return route

    async def publish(self, record: SourceRecord) -> Published:
        """One attempt: validate, serialise and send ``record``; resolves on the broker's ack."""
        route = self._routes.get(record.topic)
        if route is None:  # not created yet: no coroutine for the common case
            route = await self.route(record.topic)
        payload = self.encode(record)
        gauge = route.inflight
        gauge.inc()
        started = time.perf_counter()
        try:
            mid = await route.producer.send(
                payload, attributes=dict(record.attributes) or None, key=record.key
            )
        except DanubeError as exc:
            self._metrics.error(record.topic, "publish")
            self._broker_state(False, str(exc))
            raise Retryable(f"publish to {record.topic} failed: {exc}") from exc
        finally:
            gauge.dec()
        route.duration.observe(time.perf_counter() - started)
        route.sent.inc()
        self._broker_state(True, "")
        return Published(mid.topic, mid.partition, mid.offset)

    async def dead_letter(self, envelope: SourceEnvelope, reason: str) -> Published:
        """One attempt to publish the dead letter of an invalid record (its payload as bytes, its attributes
        plus ``error.*``, see :func:`~danube_connect_core.dead_letter.source_dead_letter_attributes`) to
        ``[errors] dead_letter_topic``; resolves on the broker's ack. Raises Retryable."""
        record = envelope.record
        name = self._config.connector_name
        try:
            dlq = await self.open_dead_letter()
            attributes = source_dead_letter_attributes(envelope, reason=reason, connector=name)
            mid = await dlq.send(dead_letter_payload(record), attributes=attributes, key=record.key)
        except DanubeError as exc:
            self._metrics.error(record.topic, "dead_letter")
            self._broker_state(False, str(exc))
            raise Retryable(f"dead-letter publish failed: {exc}") from exc
        self._metrics.dead_lettered.labels(self._metrics.connector, record.topic).inc()
        self._broker_state(True, "")
        log.warning(
            "record for %s dead-lettered to %s: %s", record.topic, self._config.dead_letter_topic, reason
        )
        return Published(mid.topic, mid.partition, mid.offset, dead_letter_reason=reason)

    async def open_dead_letter(self) -> Any:
        """The dead-letter producer, created on first use (raises DanubeError)."""
        async with self._dlq_lock:
            if self._dlq is None:
                self._dlq = await self._client.create_producer(
                    self._config.dead_letter_topic, f"{self._config.connector_name}-dlq", reliable=True
                )
            return self._dlq

    def _broker_state(self, ok: bool, detail: str) -> None:
        if self.on_broker_state is not None:
            self.on_broker_state(ok, detail)

    async def close(self) -> None:
        for route in self._routes.values():
            try:
                await route.producer.close()
            except Exception as exc:  # closing is best effort; everything was acknowledged already
                log.debug("closing producer: %s", exc)
        self._routes.clear()
        if self._dlq is not None:
            with contextlib.suppress(Exception):
                await self._dlq.close()
            self._dlq = None
