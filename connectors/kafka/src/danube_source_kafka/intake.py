"""From Kafka fetch to Danube ack to offset commit, across rebalances.

Guarantees, with the invariants of docs/architecture.md (the delivery pipeline of the core does the
publishing, validation, retries, dead letters and the per-topic in-flight bound; this module does the
Kafka side only):

- Invariant 1: an offset is committed to the consumer group only through ``commit()``, which the runtime
  calls in order per offset partition with records that Danube acknowledged (or whose dead letter it
  acknowledged). Auto-commit is off. A crash therefore replays at most the records acknowledged after the
  last commit: duplicates, never a loss.
- Rebalances: the offset partition of a record is ``<topic>/<partition>#<epoch>``, where the epoch counts
  assignments. Before revoked partitions are given up, fetching them stops, the polls in flight are awaited
  and the wait goes on until their acknowledged offsets are committed (at most half of
  ``max_poll_interval_ms``). A commit for a partition this instance no longer owns, or owned in an earlier
  epoch, is dropped: it could move the new owner's committed offset backwards.
- Ordering: each partition's records are handed to the core in offset order as they are fetched (so
  the core tracks their offsets in order), each with an ordering key (``SourceEnvelope.ordering_key``);
  the core's delivery pipeline sends a record only once the one before it with the same ordering key
  settled (:mod:`danube_connect_core.ordering`). ``ordering = "key"`` (the default): the ordering key is
  the Kafka key within its partition (``<topic>/<partition>:<key>``), so records of one key keep their
  Kafka order and different keys, and keyless records, go concurrently. ``"partition"``: the ordering
  key is the partition (``<topic>/<partition>``), one record in flight per partition (slower).
  ``"none"``: no ordering key. The Kafka key is also the routing key, which picks the Danube partition.
- Invariant 3: at most ``max_poll_records x max_batches_in_flight`` records are held (fetched and not yet
  acknowledged); fetching waits below that, and the pipeline's bound makes each send wait for room.
- A publish that fails for good (the ``[retry]`` budget exhausted) stops the connector (exit 1): nothing
  after the failed record is committed, and a restart reads it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener  # type: ignore[import-untyped]
from aiokafka.errors import (  # type: ignore[import-untyped]
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
)
from aiokafka.structs import OffsetAndMetadata  # type: ignore[import-untyped]
from danube_connect_core import (
    Fatal,
    InvalidData,
    Offset,
    Retryable,
    ShuttingDown,
    SourceEnvelope,
    SourceSender,
)

from danube_source_kafka.metrics import KafkaMetrics
from danube_source_kafka.records import ReadFormat, attributes_of, build_record, routing_key
from danube_source_kafka.settings import KafkaSettings, TopicMapping

__all__ = ["Intake", "Route"]

log = logging.getLogger("danube_connect.kafka")


@dataclass(frozen=True, slots=True)
class Route:
    mapping: TopicMapping
    fmt: ReadFormat


@dataclass(eq=False, slots=True)
class _Owned:
    """A partition this instance owns in assignment ``epoch``."""

    tp: Any
    epoch: int
    #: The offset partition (``<topic>/<partition>#<epoch>``), and ``<topic>/<partition>``.
    key: str
    route: Route | None
    partition_name: str
    #: The last offset handed to Danube, and the last one committed (-1: none yet).
    dispatched: int = -1
    committed: int = -1
    revoking: bool = False
    #: The sends of this partition's records not finished yet.
    sending: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass
class _Counts:
    consumed: int = 0
    published: int = 0
    dead_lettered: int = 0
    commits: int = 0
    rebalances: int = 0
    unmapped: set[str] = field(default_factory=set)


class Intake:
    """Runs the fetch loop of one consumer and keeps the per-partition bookkeeping for commits."""

    def __init__(
        self,
        settings: KafkaSettings,
        consumer: AIOKafkaConsumer,
        routes: Callable[[str], Route | None],
        metrics: KafkaMetrics,
        fail: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._routes = routes
        self._metrics = metrics
        self._fail_runtime = fail
        self._owned: dict[Any, _Owned] = {}
        self._by_key: dict[str, _Owned] = {}
        self._epoch = 0
        #: Every send not finished yet (all partitions): the records fetched and not yet acknowledged.
        self._sending: set[asyncio.Task[None]] = set()
        #: Set when a send finished (the fetch loop waits on it while ``_sending`` is at its limit).
        self._send_done = asyncio.Event()
        self._sender: SourceSender | None = None
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: Set once the consumer started (Kafka answered): the fetch loop waits for it.
        self.consumer_started = asyncio.Event()
        self.fatal: str | None = None
        self.counts = _Counts()
        #: Half the poll interval: the longest a rebalance waits for revoked partitions to be committed.
        self.rebalance_wait_s = settings.max_poll_interval_ms / 2000

    # -- rebalance callbacks (aiokafka awaits them inside the group protocol) ---------------------------

    def listener(self) -> ConsumerRebalanceListener:
        intake = self

        class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
                await intake.on_revoked(revoked)

            async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
                intake.on_assigned(assigned)

        return _Listener()

    def on_assigned(self, assigned: Iterable[Any]) -> None:
        self._epoch += 1
        tps = sorted(assigned)
        for tp in tps:
            key = f"{tp.topic}/{tp.partition}#{self._epoch}"
            owned = _Owned(tp, self._epoch, key, self._routes(tp.topic), f"{tp.topic}/{tp.partition}")
            self._owned[tp] = owned
            self._by_key[key] = owned
        self.counts.rebalances += 1
        self._metrics.rebalances.labels(self._metrics.connector, "assigned").inc()
        self._metrics.assigned.set(len(self._owned))
        log.info(
            "Kafka partitions assigned (epoch %d): %s",
            self._epoch,
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in tps) or "none",
        )

    async def on_revoked(self, revoked: Iterable[Any]) -> None:
        """Stop handing over records of ``revoked``, wait until what was handed over is committed."""
        owned = [self._owned[tp] for tp in revoked if tp in self._owned]
        for o in owned:
            o.revoking = True
        self._metrics.rebalances.labels(self._metrics.connector, "revoked").inc()
        if owned and not self._stopping:
            started = time.monotonic()
            sending = {t for o in owned for t in o.sending}
            if sending:
                await asyncio.wait(sending, timeout=self.rebalance_wait_s)
            left = max(0.0, self.rebalance_wait_s - (time.monotonic() - started))
            async with self._progress:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._progress.wait_for(lambda: all(o.committed >= o.dispatched for o in owned)), left
                    )
            behind = [o for o in owned if o.committed < o.dispatched]
            if behind:
                log.warning(
                    "rebalance: %s not committed within %.0fs: the next owner reads them again",
                    ", ".join(
                        f"{o.tp.topic}[{o.tp.partition}] {o.committed + 1}..{o.dispatched}" for o in behind
                    ),
                    self.rebalance_wait_s,
                )
        for o in owned:
            self._owned.pop(o.tp, None)
        self._metrics.assigned.set(len(self._owned))
        if owned:
            log.info(
                "Kafka partitions revoked: %s", ", ".join(f"{o.tp.topic}[{o.tp.partition}]" for o in owned)
            )

    # -- commits (called by the runtime with acknowledged offsets) -------------------------------------

    async def commit(self, offsets: list[Offset]) -> None:
        """Commit ``position + 1`` for each offset of a partition still owned in the same epoch."""
        chosen: dict[Any, tuple[_Owned, int]] = {}
        for offset in offsets:
            owned = self._by_key.get(offset.partition)
            if owned is None or self._owned.get(owned.tp) is not owned:
                continue  # revoked since: its new owner commits (ours could move it backwards)
            chosen[owned.tp] = (owned, offset.position)
        if not chosen:
            return
        try:
            await self._consumer.commit(
                {tp: OffsetAndMetadata(pos + 1, "") for tp, (_, pos) in chosen.items()}
            )
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under us: the partition's next owner reads these records again.
            self._metrics.commit_failures.inc()
            log.warning("offset commit refused (%s): records are read again by the next owner", exc)
            return
        except KafkaError as exc:
            self._metrics.commit_failures.inc()
            raise Retryable(f"offset commit failed: {exc}") from exc
        self._metrics.commits.inc()
        self.counts.commits += 1
        async with self._progress:
            for owned, pos in chosen.values():
                owned.committed = max(owned.committed, pos)
            self._progress.notify_all()

    # -- the fetch loop --------------------------------------------------------------------------------

    def start(self, sender: SourceSender) -> None:
        self._sender = sender
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kafka-intake")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        s = self._settings
        limit = s.max_poll_records * s.max_batches_in_flight
        await self.consumer_started.wait()
        while not self._stopping:
            if len(self._sending) >= limit:
                # not asyncio.wait over every send: thousands may be queued in the core's ordering lanes
                self._send_done.clear()
                await self._send_done.wait()
                continue
            try:
                fetched = await self._consumer.getmany(timeout_ms=500, max_records=s.max_poll_records)
            except (NoOffsetForPartitionError, OffsetOutOfRangeError) as exc:
                self._fail(f"no committed offset to start from (start_position = {s.start_position}): {exc}")
                return
            except KafkaError as exc:
                # Brokers down or a transient protocol error: the consumer reconnects; health_check
                # reports not-ready meanwhile.
                log.warning("Kafka fetch failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if self._stopping:  # a send failed, or stop() was called, while fetching
                return
            self._hand_over(fetched)

    def _hand_over(self, fetched: dict[Any, list[Any]]) -> None:
        """Start one send per record, in offset order per partition (tasks start in creation order, and
        the pipeline registers offset and ordering key before its first await)."""
        c = self._metrics.connector
        ordering = self._settings.ordering
        loop = asyncio.get_running_loop()
        for tp, messages in fetched.items():
            owned = self._owned.get(tp)
            if owned is None or owned.revoking or not messages:
                continue  # fetched before a rebalance: the partition's owner reads it from its commit
            self._metrics.consumed.labels(c, tp.topic).inc(len(messages))
            self.counts.consumed += len(messages)
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                self._metrics.lag.labels(c, tp.topic).set(max(0, highwater - messages[-1].offset - 1))
            route = owned.route
            if route is None:
                if tp.topic not in self.counts.unmapped and len(self.counts.unmapped) < 1000:
                    self.counts.unmapped.add(tp.topic)
                    log.warning("no topic mapping for Kafka topic %r: its records are skipped", tp.topic)
                continue
            for m in messages:
                key, b64 = routing_key(m.key)
                attrs = attributes_of(
                    m.topic, m.partition, m.offset, m.timestamp, m.timestamp_type, m.headers
                )
                if b64:
                    attrs["kafka.key_encoding"] = "base64"
                record, reason = build_record(route.mapping.danube_topic, route.fmt, m.value, key, attrs)
                offset = Offset(owned.key, m.offset)
                if ordering == "key":
                    order = None if key is None else f"{owned.partition_name}:{key}"
                else:
                    order = owned.partition_name if ordering == "partition" else None
                envelope = SourceEnvelope(record, offset, rejected=reason, ordering_key=order)
                task = loop.create_task(self._send(envelope))
                owned.sending.add(task)
                task.add_done_callback(owned.sending.discard)
                self._sending.add(task)
                task.add_done_callback(self._sent)
                owned.dispatched = m.offset

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._send_done.set()

    async def _send(self, envelope: SourceEnvelope) -> None:
        assert self._sender is not None
        try:
            published = await self._sender.send(envelope)
        except ShuttingDown:
            self._stopping = True
            return  # not acknowledged, not committed: read again after the restart
        except (InvalidData, Fatal):
            self._stopping = True
            return  # tolerance = "none" or a broken topic: the runtime is stopping already
        except Retryable as exc:
            self._fail(f"publishing to Danube failed after retries: {exc}")
            return
        except Exception as exc:
            log.exception("delivering a Kafka record failed")
            self._fail(f"delivering a Kafka record failed: {type(exc).__name__}: {exc}")
            return
        if published.dead_lettered:
            self.counts.dead_lettered += 1
        else:
            self.counts.published += 1

    def _fail(self, reason: str) -> None:
        if self.fatal is None:
            self.fatal = reason
            log.error("Kafka source: %s", reason)
        self._stopping = True
        self._fail_runtime(reason)

    async def stop(self, within: float = 10.0) -> None:
        """Stop fetching; the polls in flight finish (the runtime drained them already)."""
        self._stopping = True
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=within)
        tasks = [*self._sending, *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
