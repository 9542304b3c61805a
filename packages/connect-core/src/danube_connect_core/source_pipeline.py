"""The delivery pipeline every source record goes through, polled or streamed (invariants 1, 3, 4, 5, 6).

A record handed over — returned by ``poll()`` or passed to ``sender.send`` — takes one path:

1. Intake check: once the runtime stopped intake (SIGTERM, a fatal error) it is refused with ShuttingDown;
   nothing was published (invariant 6).
2. Its offset, if any, is registered in hand-over order (the order ``send`` is called, the order of a
   poll's list), before anything can wait (a topic ``producer_configs()`` did not declare gets its producer
   after that, so records handed over while it is created keep their order). So is its ordering key
   (``SourceEnvelope.ordering_key``), if any: the record waits until the record with the same key handed
   over before it settled (acknowledged, or dead-lettered and the dead letter acknowledged), so records
   of one key reach the broker in hand-over order; different keys and key-less records do not wait for
   each other. When that earlier record did not settle (failed for good, refused, cancelled after its
   turn came) this one is not sent either: it raises ShuttingDown or Retryable
   (:mod:`danube_connect_core.ordering`).
3. In-flight bound: at most ``max_in_flight x partitions`` records of one topic (``ProducerConfig.
   max_in_flight``, else ``processing.max_in_flight``) are inside steps 4-5 at once; a further ``send``
   waits for a place (backpressure, invariant 3).
4. Validation and publish: the record is validated against its topic's schema and published; a failed
   publish (Retryable) is retried with ``[retry]`` backoff while the runtime reports not-ready.
5. Invalid record (its schema rejects it, or the connector marked it with ``SourceEnvelope.invalid``): with
   ``[errors] tolerance = "all"`` it is published to the dead-letter topic with ``error.*`` attributes
   (retried like a publish) and its send returns a :class:`~danube_connect_core.publisher.Published` with
   ``dead_letter_reason`` set; with ``tolerance = "none"`` the runtime stops (exit 1), nothing is
   published or dead-lettered and ``send`` raises InvalidData (invariants 4, 5).
6. Acknowledged (the record or its dead letter): its offset is done; ``commit()`` receives, in order per
   offset partition, the newest offset whose record and every earlier one of that partition are done
   (invariant 1). A record that failed for good, or whose send was cancelled, is never done: the offsets
   after it are never committed, and the source replays from the last committed one after a restart.

``send(item, wait=False)`` is for a caller that must answer promptly and whose upstream retries (an HTTP
handler): it raises :class:`~danube_connect_core.errors.Backpressure` at once when the bound is full, and
a failed publish (or dead letter) gets one attempt — the client's own transport retries — instead of the
``[retry]`` budget. (A record with an ordering key that passed that check still waits for its turn, then
for a place; so does a record for an undeclared topic whose producer is not created yet: there is no bound
to check, it waits for the producer, then for a place.)

Failure of the retry budget: a polling source's runtime exits 1; a streaming ``send`` raises Retryable
(nothing acknowledged — an HTTP source answers "unavailable", a source that cannot tell its upstream to
retry later calls ``RuntimeContext.fail``). A Fatal error from the broker (e.g. a schema that cannot be
registered) stops the runtime and is raised to the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from danube_connect_core.config import ConnectorConfig
from danube_connect_core.errors import Backpressure, Fatal, InvalidData, Retryable, ShuttingDown
from danube_connect_core.offset_tracker import OffsetTracker, Ticket
from danube_connect_core.ordering import OrderingLanes
from danube_connect_core.publisher import Published, Publisher
from danube_connect_core.records import Offset, SourceEnvelope, SourceRecord
from danube_connect_core.resilience import RetriesExhausted, retry_retryable

if TYPE_CHECKING:
    from danube_connect_core.runtime_support import RuntimeServices

__all__ = ["PipelineSender", "SourcePipeline"]

log = logging.getLogger("danube_connect.source")


class SourcePipeline:
    """Steps 1-6 of the module docstring for one source runtime."""

    def __init__(self, publisher: Publisher, config: ConnectorConfig, services: RuntimeServices) -> None:
        self.publisher = publisher
        self.config = config
        self.services = services
        self.metrics = services.metrics
        self.offsets = OffsetTracker()
        self.accepting = False
        #: Set whenever an offset may have become committable (the runtime's committer waits on it).
        self.commit_wake = asyncio.Event()
        self.inflight = 0
        #: The most records that were inside the bound at once, per topic (for tests and logs).
        self.peak_in_flight: dict[str, int] = {}
        self._inside: dict[str, int] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.lanes = OrderingLanes()

    async def deliver(self, item: SourceRecord | SourceEnvelope, *, wait: bool = True) -> Published:
        """Take one record through the pipeline; resolves once it (or its dead letter) is acknowledged."""
        if not self.accepting:
            raise ShuttingDown("connector is shutting down: not accepting records", retry_after=1.0)
        envelope = SourceEnvelope.of(item)
        topic = envelope.record.topic
        route = self.publisher.known_route(topic)
        if route is not None:
            route.received.inc()
            if not wait and route.bound.locked():
                raise Backpressure(f"{route.capacity} records for {topic} are already in flight")
        else:  # a topic not declared in producer_configs(): its producer is created below, once this
            # record holds its place (records handed over while it is created must not overtake it)
            self.metrics.received.labels(self.metrics.connector, topic).inc()
        # Registered with no await since the checks above, so offsets are tracked in hand-over order. From
        # here on a record that is not delivered (refused while waiting for a place, failed, cancelled)
        # keeps its ticket open: no later offset of its partition is committed past it.
        ticket = self.offsets.track(envelope.offset) if envelope.offset is not None else None
        self._enter()
        try:
            # The ordering lane is joined here too, in hand-over order; the record waits for its turn.
            async with self.lanes.turn(envelope.ordering_key):
                if route is None:
                    route = await self.publisher.route(topic)
                async with route.bound:
                    if not self.accepting:  # intake stopped while this record waited
                        raise ShuttingDown(
                            "connector is shutting down: not accepting records", retry_after=1.0
                        )
                    inside = self._inside[topic] = self._inside.get(topic, 0) + 1
                    self.peak_in_flight[topic] = max(self.peak_in_flight.get(topic, 0), inside)
                    try:
                        published = await self._publish_or_dead_letter(envelope, retry=wait)
                    finally:
                        self._inside[topic] -= 1
        finally:
            self._leave()
        self._done(ticket)
        return published

    async def _publish_or_dead_letter(self, envelope: SourceEnvelope, *, retry: bool) -> Published:
        record = envelope.record
        reason = envelope.rejected
        if reason is None:
            try:
                return await self._retry(
                    lambda: self.publisher.publish(record), "publish", record.topic, retry
                )
            except InvalidData as exc:
                reason = exc.reason
        else:
            self.metrics.error(record.topic, "invalid_data")
        if self.config.errors.invalid_is_fatal:
            invalid = InvalidData(reason)
            self.services.fail(invalid, f"invalid record for {record.topic} (tolerance = none): {reason}")
            raise invalid
        return await self._retry(
            lambda: self.publisher.dead_letter(envelope, reason), "dead letter", record.topic, retry
        )

    async def _retry(
        self, attempt: Callable[[], Awaitable[Published]], what: str, topic: str, retry: bool
    ) -> Published:
        """``attempt`` under the ``[retry]`` budget (one attempt when ``retry`` is false: the caller's
        upstream retries); Fatal stops the runtime; an exhausted budget raises Retryable."""

        def on_retry(n: int, exc: Retryable, delay: float) -> None:
            self.metrics.retries.labels(self.metrics.connector, topic).inc()
            self.services.health.set_retrying(True, f"{what}: {exc} (retry {n} in {delay:.2f}s)")
            log.warning("%s to %s failed, retry %d in %.2fs: %s", what, topic, n, delay, exc)

        try:
            if retry:
                result = await retry_retryable(attempt, self.config.retry, on_retry=on_retry)
            else:  # the one attempt is awaited directly: no retry loop to set up per record
                result = await attempt()
        except RetriesExhausted as exc:
            self.services.health.set_retrying(False)
            retry_after = getattr(exc.last, "retry_after", None)
            raise Retryable(f"{what} to {topic}: {exc}", retry_after=retry_after) from exc
        except Retryable as exc:  # the one attempt failed (retry_retryable turns these into the above)
            self.services.health.set_retrying(False)
            raise Retryable(f"{what} to {topic}: one attempt: {exc}", retry_after=exc.retry_after) from exc
        except Fatal as exc:
            self.services.fail(exc, str(exc))
            raise
        if self.services.health.retrying:  # not on every record: it re-publishes the health gauge
            self.services.health.set_retrying(False)
        return result

    def _done(self, ticket: Ticket | None) -> None:
        if ticket is not None:
            self.offsets.done(ticket)
            self.commit_wake.set()

    def _enter(self) -> None:
        self.inflight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return when no record is inside the pipeline."""
        await self._idle.wait()

    def take_committable(self) -> list[Offset]:
        return self.offsets.take_committable()


class PipelineSender:
    """The :class:`~danube_connect_core.connector.SourceSender` a streaming source pushes records to."""

    def __init__(self, pipeline: SourcePipeline) -> None:
        self._pipeline = pipeline

    async def send(self, item: SourceRecord | SourceEnvelope, *, wait: bool = True) -> Published:
        """Deliver one record (see the module docstring for every outcome)."""
        return await self._pipeline.deliver(item, wait=wait)

    async def send_batch(self, items: Sequence[SourceRecord | SourceEnvelope]) -> list[Published]:
        """Deliver all items concurrently (offsets tracked in list order); returns when every one is
        acknowledged or dead-lettered, raises the first failure (the others may have been published)."""
        results = await asyncio.gather(*(self._pipeline.deliver(i) for i in items), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return [r for r in results if isinstance(r, Published)]
