"""SinkRuntime: runs a SinkConnector, one consumer and one batch per mapping.

Per message: decode by its schema (registry cached), check ``expected_schema_subject``; undecodable or
mismatched messages are dead-lettered at once. Healthy records collect in the mapping's batch until it is
due (size, the broker's in-flight window, age, idle), then ``connector.write(SinkBatch)`` runs
(:mod:`danube_connect_core.sink_batch`):

- returns -> records not reported are acked (invariant 1: only after the target write succeeded; the acks
  stay in flight while the next batches are read and written, at most ACK_CONCURRENCY calls at once, and
  are awaited before a retry, before stopping and before the mapping closes);
  records reported with ``batch.reject`` go to the dead-letter topic and are acked once the dead-letter
  publish was acknowledged (invariant 5; ``tolerance = "none"`` makes the first one fatal instead);
  records reported with ``batch.retry`` are written again, alone, after a backoff;
- Retryable (or any unexpected exception) -> the whole batch again after a backoff with jitter, not-ready
  meanwhile. One budget per batch covers both kinds of retry; exhausted -> unhealthy, exit 1, the records
  not yet settled stay unacked (the broker redelivers; invariant 5: an outage is not poison);
- Fatal (or InvalidData escaping ``write``: it names no record) -> stop intake, drain the other mappings,
  exit 1.

On SIGTERM/SIGINT (invariant 6) intake stops, a batch being written completes and is acked, the rest of
every batch is flushed and acked, ``shutdown()`` is called, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import grpc

from danube_connect_core.batching import Batcher
from danube_connect_core.client.ratelog import RateLimitedLog
from danube_connect_core.config import ConnectorConfig, RetrySettings
from danube_connect_core.connector import SinkConnector
from danube_connect_core.consumer_config import ConsumerConfig
from danube_connect_core.dead_letter import DeadLetter
from danube_connect_core.errors import ConfigError, Fatal, InvalidData, Retryable
from danube_connect_core.records import SinkRecord
from danube_connect_core.resilience import RetriesExhausted, equal_jitter, retry_retryable
from danube_connect_core.runtime_support import RuntimeServices, create_client
from danube_connect_core.schema_cache import SchemaCache
from danube_connect_core.sink_batch import SinkBatch

__all__ = ["ACK_CONCURRENCY", "SUBSCRIBE_RETRY_MAX_WAIT_S", "SinkRuntime", "subscribe_retry_delay"]

log = logging.getLogger("danube_connect.sink")

#: The longest wait between two subscription attempts while a topic does not exist yet (or the broker is
#: unreachable). Kept small on purpose: a sink started before its source must become ready soon after the
#: source created the topic, not after an exponential backoff of tens of seconds.
SUBSCRIBE_RETRY_MAX_WAIT_S = 1.0

#: At most this many acks of one mapping are in flight at once (over all its settled batches). A batch
#: holds up to ``batch_size`` records (thousands), and the protocol has one unary Ack RPC per message:
#: sending them all at once floods the broker (the embedded broker's gRPC server answers CANCELLED to calls
#: beyond ~1,000 waiting ones; the client sends those again, after a backoff). A bounded window hides the
#: round trip just as well (docs/architecture.md §4, performance principles).
ACK_CONCURRENCY = 64


def subscribe_retry_delay(attempt: int, retry: RetrySettings) -> float:
    """Seconds to wait before subscription attempt ``attempt + 1``: exponential from
    ``retry.retry_backoff_ms``, capped by ``retry.max_backoff_ms`` and by :data:`SUBSCRIBE_RETRY_MAX_WAIT_S`,
    with equal jitter (a uniform draw in ``[d/2, d]``)."""
    cap = min(SUBSCRIBE_RETRY_MAX_WAIT_S, retry.max_backoff_ms / 1000)
    return equal_jitter(attempt, retry.retry_backoff_ms / 1000, cap)


class _Stopped(Exception):
    pass


class SinkRuntime:
    def __init__(self, connector: SinkConnector, config: ConnectorConfig, *, client: Any = None) -> None:
        self.connector = connector
        self.config = config
        self.services = RuntimeServices(connector, config)
        self.metrics = self.services.metrics
        self.health = self.services.health
        self._client = client
        self._owns_client = client is None
        self._dlq: Any = None
        self._dlq_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._schemas: SchemaCache | None = None
        self._retrying: set[str] = set()
        self._unsubscribed: set[str] = set()
        #: Set once every mapping's consumer is subscribed (a topic that does not exist yet delays it).
        self.started = asyncio.Event()

    @property
    def port(self) -> int:
        return self.services.port

    async def run(self, stop: asyncio.Event | None = None) -> int:
        stop = stop or asyncio.Event()
        s = self.services
        await s.start_server()
        log.info(
            "sink %s starting (metrics on port %d)",
            self.config.connector_name,
            s.port,
            extra={"metrics_port": s.port},
        )
        workers: list[_MappingWorker] = []
        tasks: list[asyncio.Task[Any]] = []
        initialized = False
        intake_stop = asyncio.Event()
        try:
            await self.connector.initialize(self.config)
            initialized = True
            await s.check_target_once()
            if self._client is None:
                self._client = create_client(self.config)
            self._schemas = SchemaCache(self._client.schema_registry)
            configs = await self.connector.consumer_configs()
            if not configs:
                raise Fatal("consumer_configs() returned no topics")
            try:  # created up front so broker problems show at start and the topic exists for readers
                await self._dead_letter_producer()
            except Retryable as exc:
                log.warning("%s (will retry on the first dead letter)", exc)
            workers = [_MappingWorker(self, cc, intake_stop) for cc in configs]
            self._unsubscribed = {cc.topic for cc in configs}
            tasks.append(asyncio.create_task(s.health_loop(), name="health"))
            for w in workers:
                tasks.append(asyncio.create_task(w.run(), name=f"mapping {w.cc.topic}"))
            await s.until_stopped(stop)
        except ConfigError:
            raise
        except Fatal as exc:
            s.fail(exc, str(exc))
        except Exception as exc:
            log.exception("sink runtime failed")
            s.fail(exc, f"{type(exc).__name__}: {exc}")
        return await self._drain(workers, tasks, intake_stop, initialized)

    async def _drain(
        self,
        workers: list[_MappingWorker],
        tasks: list[asyncio.Task[Any]],
        intake_stop: asyncio.Event,
        initialized: bool,
    ) -> int:
        s = self.services
        intake_stop.set()  # invariant 6: stop intake; workers flush what they hold and return
        self.health.set_shutting_down()
        timeout = self.config.processing.shutdown_timeout_ms / 1000
        worker_tasks = [t for t in tasks if t.get_name().startswith("mapping ")]
        if worker_tasks:
            _, pending = await asyncio.wait(worker_tasks, timeout=timeout)
            if pending:
                log.error(
                    "shutdown timeout (%d ms) reached; unacked records will be redelivered", timeout * 1000
                )
                s.fail(TimeoutError(), "shutdown timeout reached")
        closers: list[Any] = [w.close for w in workers]
        if self._dlq is not None:
            closers.append(self._dlq.close)
        if self._client is not None and self._owns_client:
            closers.append(self._client.close)
        return await s.finish("sink", tasks, initialized=initialized, closers=closers)

    # -- subscription bookkeeping -----------------------------------------------------------------

    def _subscription_waiting(self, topic: str, detail: str) -> None:
        self._unsubscribed.add(topic)
        self.health.set_broker(False, detail)

    def _subscription_done(self, topic: str) -> None:
        # Connected only once every mapping is subscribed (one subscribed mapping must not hide another
        # that still waits for its topic).
        self._unsubscribed.discard(topic)
        if not self._unsubscribed:
            self.health.set_broker(True)
            self.started.set()

    # -- retry bookkeeping ------------------------------------------------------------------------

    def _on_retry(self, topic: str) -> Any:
        def on_retry(n: int, exc: Retryable, delay: float) -> None:
            self.metrics.retries.labels(self.metrics.connector, topic).inc()
            self.metrics.error(topic, "retryable")
            self._retrying.add(topic)
            self.health.set_retrying(True, f"{topic}: {exc} (retry {n} in {delay:.2f}s)")
            log.warning("write to target failed for %s, retry %d in %.2fs: %s", topic, n, delay, exc)

        return on_retry

    def _retry_done(self, topic: str) -> None:
        if topic not in self._retrying:
            return  # the common case (called per message and per batch): no health update to publish
        self._retrying.discard(topic)
        if not self._retrying:
            self.health.set_retrying(False)

    # -- dead letters -------------------------------------------------------------------------------

    async def _dead_letter_producer(self) -> Any:
        from danube_connect_core.client import DanubeError

        async with self._dlq_lock:
            if self._dlq is None:
                try:
                    self._dlq = await self._client.create_producer(
                        self.config.dead_letter_topic, f"{self.config.connector_name}-dlq", reliable=True
                    )
                except DanubeError as exc:
                    raise Retryable(f"cannot create the dead-letter producer: {exc}") from exc
            return self._dlq

    async def dead_letter(self, letters: list[DeadLetter]) -> None:
        """Publish ``letters`` to the dead-letter topic; returns when all are acknowledged by the broker.

        Raises Retryable when the broker does not acknowledge (the originals are then not acked).
        """
        from danube_connect_core.client import DanubeError

        dlq = await self._dead_letter_producer()
        name = self.config.connector_name
        for letter in letters:
            try:
                await dlq.send(letter.record.raw, attributes=letter.attributes(name), key=letter.record.key)
            except DanubeError as exc:
                self.metrics.error(letter.record.topic, "dead_letter")
                raise Retryable(f"dead-letter publish failed: {exc}") from exc
            self.metrics.dead_lettered.labels(name, letter.record.topic).inc()
            log.warning(
                "dead-lettered %s to %s: %s",
                letter.record.message_id,
                self.config.dead_letter_topic,
                letter.reason,
            )


class _MappingWorker:
    """One consumer, its batch and its write loop."""

    def __init__(self, runtime: SinkRuntime, cc: ConsumerConfig, intake_stop: asyncio.Event) -> None:
        self.rt = runtime
        self.cc = cc
        self.intake_stop = intake_stop
        p = runtime.config.processing
        self.batch: Batcher[tuple[SinkRecord, Any]] = Batcher(
            max_size=cc.batch_size or p.batch_size,
            max_age_s=(cc.flush_interval_ms or p.batch_timeout_ms) / 1000,
            idle_s=p.batch_idle_ms / 1000,
            window=p.max_unacked_messages,
        )
        self.consumer: Any = None
        self._recv: asyncio.Future[Any] | None = None
        #: Acks of settled batches still in flight while the next batches are read and written; at most
        #: ACK_CONCURRENCY calls at once (the window), and never more messages than the broker delivers
        #: unacked (``max_unacked_messages`` per partition): bounded.
        self._acking: set[asyncio.Task[None]] = set()
        self._ack_window = asyncio.Semaphore(ACK_CONCURRENCY)
        #: This mapping's received counter and in-flight gauge (labelled once, when subscribed).
        self._received: Any = None
        self._inflight: Any = None

    async def subscribe(self) -> None:
        """Subscribe, retrying until it works or intake stops.

        A topic that does not exist yet (the sink started before its source) or a broker that is down is
        waited for, reported as not-ready, never fatal; a permanent refusal (bad name, permissions) is Fatal.
        Attempts are at most :data:`SUBSCRIBE_RETRY_MAX_WAIT_S` apart; the log line is rate limited.
        """
        from danube_connect_core.client import DanubeError, RetriesExhausted

        rt = self.rt
        name = self.cc.name_for(rt.config.connector_name)
        attempt = 0
        waiting_log = RateLimitedLog(log, per_second=1 / 30, burst=1)
        while not self.intake_stop.is_set():
            try:
                self.consumer = await rt._client.subscribe(
                    self.cc.topic,
                    self.cc.subscription,
                    consumer_name=name,
                    subscription_type=self.cc.subscription_type,
                )
                break
            except DanubeError as exc:
                missing = exc.code == grpc.StatusCode.NOT_FOUND or "does not exist" in str(exc)
                permanent = not isinstance(exc, RetriesExhausted) and not missing
                if permanent:
                    raise Fatal(
                        f"cannot subscribe to {self.cc.topic} as {self.cc.subscription}: {exc}"
                    ) from exc
                rt._subscription_waiting(self.cc.topic, f"subscribe {self.cc.topic}: {exc}")
                delay = subscribe_retry_delay(attempt, rt.config.retry)
                waiting_log.warning(
                    "cannot subscribe to %s yet (%s); retrying every %.1fs at most",
                    self.cc.topic,
                    exc,
                    SUBSCRIBE_RETRY_MAX_WAIT_S,
                )
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.intake_stop.wait(), delay)
        else:
            raise _Stopped()
        rt.metrics.declare_topic(self.cc.topic)
        self._received = rt.metrics.received.labels(rt.metrics.connector, self.cc.topic)
        self._inflight = rt.metrics.inflight.labels(rt.metrics.connector, self.cc.topic)
        rt._subscription_done(self.cc.topic)
        if attempt:
            log.info("subscribed to %s after %d failed attempt(s)", self.cc.topic, attempt)

    async def run(self) -> None:
        rt = self.rt
        topic = self.cc.topic
        try:
            await self.subscribe()
            while not self.intake_stop.is_set():
                msg = await self._next_message()
                if msg is not None:
                    self._received.inc()
                    self._inflight.inc()
                    record = await self._decode(msg)
                    if record is not None:
                        self.batch.add((record, msg), msg.partition or 0)
                if self.batch.due():
                    await self._flush()
            if len(self.batch):
                await self._flush()  # invariant 6: flush what was taken in before stopping
            await self._acks_sent()
        except _Stopped:
            pass
        except (Fatal, RetriesExhausted) as exc:
            rt.services.fail(exc, f"{topic}: {exc}")
        except Exception as exc:
            log.exception("mapping %s failed", topic)
            rt.services.fail(exc, f"{topic}: {type(exc).__name__}: {exc}")

    async def _next_message(self) -> Any:
        """The next message, or None when the batch's deadline passed or intake stopped first.

        The receive call is never cancelled while running (a message taken from the consumer is never
        dropped); it is kept for the next round instead.
        """
        if self._recv is None:
            try:  # a message already queued: taken without a wait (and its two futures) per message
                msg = self.consumer.receive_nowait()
            except Exception as exc:
                return await self._receive_failed(exc)
            if msg is not None:
                return self._received_ok(msg)
            self._recv = asyncio.ensure_future(self.consumer.receive())
        deadline = self.batch.deadline()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        stop = asyncio.ensure_future(self.intake_stop.wait())
        try:
            done, _ = await asyncio.wait(
                {self._recv, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
        if self._recv in done:
            recv, self._recv = self._recv, None
            try:
                msg = recv.result()
            except Exception as exc:
                return await self._receive_failed(exc)
            return self._received_ok(msg)
        return None

    async def _receive_failed(self, exc: Exception) -> None:
        self.rt.health.set_broker(False, f"receive failed: {exc}")
        await asyncio.sleep(0.5)

    def _received_ok(self, msg: Any) -> Any:
        if not self.rt.health.broker_connected and not self.rt._unsubscribed:
            self.rt.health.set_broker(True)  # a receive failure is over once messages flow again
        return msg

    async def _decode(self, msg: Any) -> SinkRecord | None:
        """The SinkRecord of a message; dead-letters (and acks) it and returns None when it is unusable."""
        rt = self.rt
        assert rt._schemas is not None
        known = rt._schemas.cached(msg.schema_id, msg.schema_version)  # no retry machinery when known
        if known is not None:
            schema, codec = known
        else:
            try:
                schema, codec = await retry_retryable(
                    lambda: rt._schemas.lookup(msg.schema_id, msg.schema_version),  # type: ignore[union-attr]
                    rt.config.retry,
                    on_retry=rt._on_retry(self.cc.topic),
                )
            except InvalidData as exc:
                await self._reject(msg, self._record(msg, None, msg.payload), exc.reason, "schema")
                return None
            rt._retry_done(self.cc.topic)
        expected = self.cc.expected_schema_subject
        if expected is not None and (schema is None or schema.subject != expected):
            found = schema.subject if schema is not None else "no schema"
            reason = f"expected schema subject {expected!r}, message has {found!r}"
            await self._reject(msg, self._record(msg, schema, msg.payload), reason, "schema_mismatch")
            return None
        try:
            payload = codec.decode(msg.payload)
        except InvalidData as exc:
            await self._reject(msg, self._record(msg, schema, msg.payload), exc.reason, "decode")
            return None
        return self._record(msg, schema, payload)

    def _record(self, msg: Any, schema: Any, payload: Any) -> SinkRecord:
        return SinkRecord(
            payload=payload,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            publish_time=msg.publish_time,
            producer_name=msg.producer_name,
            attributes=msg.attributes,
            schema=schema,
            key=msg.routing_key,
            raw=msg.payload,
            subscription=msg.subscription,
            request_id=msg.request_id,
        )

    async def _reject(self, msg: Any, record: SinkRecord, reason: str, kind: str) -> None:
        """Dead-letter one message that never reached the connector, then ack it."""
        rt = self.rt
        rt.metrics.error(self.cc.topic, "invalid_data")
        if rt.config.errors.invalid_is_fatal:
            raise Fatal(f"invalid record {record.message_id} (tolerance = none): {reason}")
        letter = DeadLetter(record, reason, kind)
        await retry_retryable(
            lambda: rt.dead_letter([letter]), rt.config.retry, on_retry=rt._on_retry(self.cc.topic)
        )
        rt._retry_done(self.cc.topic)
        await self._ack([msg])

    async def _flush(self) -> None:
        items = self.batch.take()
        if not items:
            return
        rt = self.rt
        c = rt.metrics.connector
        rt.metrics.batch_size.labels(c, self.cc.topic).observe(len(items))
        started = time.perf_counter()
        # One write per message: a message delivered twice into one batch (a redelivery that overtook
        # its ack) is written once and both deliveries are acked.
        deliveries: dict[str, list[Any]] = {}
        records: list[SinkRecord] = []
        for record, msg in items:
            copies = deliveries.setdefault(record.message_id, [])
            if not copies:
                records.append(record)
            copies.append(msg)
        await self._write(records, deliveries)
        rt.metrics.processing_duration.labels(c, self.cc.topic).observe(time.perf_counter() - started)

    async def _write(self, records: list[SinkRecord], deliveries: dict[str, list[Any]]) -> None:
        """Write ``records`` until every one is written or dead-lettered, and ack each as it is settled.

        A Retryable (or unexpected) failure of ``write`` retries the whole batch, records the sink reported
        with ``batch.retry`` are retried alone; both with backoff, from one budget. Raises Fatal, or
        RetriesExhausted when the budget ran out (the unsettled records stay unacked: invariant 5).
        """
        rt = self.rt
        topic = self.cc.topic
        pending = records

        async def attempt() -> None:
            nonlocal pending
            batch: SinkBatch[Any] = SinkBatch(self.cc.mapping, topic, self.cc.subscription, pending)
            await self._call_write(batch)
            await self._settle(batch, deliveries)
            pending = [r for r in pending if r.message_id in batch.retried]
            if pending:
                await self._acks_sent()  # the settled records are acked before the retried are written
                first = next(iter(batch.retried.values()))
                more = f" (and {len(pending) - 1} more)" if len(pending) > 1 else ""
                raise Retryable(f"{first}{more}", retry_after=batch.retry_after)

        try:
            await retry_retryable(attempt, rt.config.retry, on_retry=rt._on_retry(topic))
        except RetriesExhausted:
            rt.health.set_target(False, "retries exhausted")
            raise
        rt._retry_done(topic)

    async def _call_write(self, batch: SinkBatch[Any]) -> None:
        """``connector.write(batch)``, its failures sorted into Retryable and Fatal."""
        rt = self.rt
        try:
            async with rt._write_lock:  # connectors are not required to be re-entrant
                await rt.connector.write(batch)
        except Retryable:
            raise
        except Fatal:
            rt.metrics.error(self.cc.topic, "fatal")
            raise
        except InvalidData as exc:  # it cannot say which record: a connector bug, not poison
            rt.metrics.error(self.cc.topic, "fatal")
            raise Fatal(
                f"write() raised InvalidData for a batch of {self.cc.topic} ({exc.reason}); "
                "a sink reports bad records with batch.reject(record, reason)"
            ) from exc
        except Exception as exc:  # unknown failure: treat as transient, never as poison (invariant 5)
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc

    async def _settle(self, batch: SinkBatch[Any], deliveries: dict[str, list[Any]]) -> None:
        """After ``write`` returned: dead-letter the rejected records, then ack them with the written ones
        (invariants 1 and 5; the acks are started here and answered in the background, see
        :meth:`_ack_in_background`). With ``tolerance = "none"`` a rejection is Fatal (the written are acked
        before it is raised)."""
        rt = self.rt
        topic = self.cc.topic
        written = batch.written
        rejected = [r for r in batch.records if r.message_id in batch.rejected]
        rt.metrics.sent.labels(rt.metrics.connector, topic).inc(len(written))
        if rejected and rt.config.errors.invalid_is_fatal:
            await self._acks_sent()
            await self._ack([msg for r in written for msg in deliveries[r.message_id]])
            rt.metrics.error(topic, "fatal")
            first = rejected[0]
            raise Fatal(
                f"invalid record {first.message_id} in {topic} (tolerance = none): "
                f"{batch.rejected[first.message_id]}"
            )
        if rejected:
            rt.metrics.error(topic, "invalid_data", len(rejected))
            letters = [DeadLetter(r, batch.rejected[r.message_id]) for r in rejected]
            await retry_retryable(
                lambda: rt.dead_letter(letters), rt.config.retry, on_retry=rt._on_retry(topic)
            )
        await self._ack_in_background([msg for r in written + rejected for msg in deliveries[r.message_id]])

    async def _ack_in_background(self, messages: list[Any]) -> None:
        """Start acking ``messages`` (written or dead-lettered: invariant 1 holds) and return: their acks
        are in flight while the next batch is read and written, as the raw-stub floor keeps them (within
        the mapping's window of ACK_CONCURRENCY calls)."""
        if messages:
            task = asyncio.create_task(self._ack(messages), name=f"acks {self.cc.topic}")
            self._acking.add(task)
            task.add_done_callback(self._acking.discard)

    async def _acks_sent(self) -> None:
        """Wait until every ack started by :meth:`_ack_in_background` is answered (or given up)."""
        while self._acking:
            await asyncio.gather(*self._acking)

    async def _ack(self, messages: list[Any]) -> None:
        """Acknowledge written or dead-lettered messages, :data:`ACK_CONCURRENCY` at a time (acks are
        independent, so their order does not matter)."""
        from danube_connect_core.client import DanubeError

        rt = self.rt
        gauge = self._inflight
        window = self._ack_window

        async def one(msg: Any) -> None:
            try:
                async with window:
                    await self.consumer.ack(msg)
            except DanubeError as exc:
                # The write succeeded; the broker will redeliver and the idempotent write absorbs it.
                rt.metrics.error(self.cc.topic, "publish")
                log.warning("ack failed (the message will be redelivered): %s", exc)
            finally:
                gauge.dec()

        await asyncio.gather(*(one(msg) for msg in messages))

    async def close(self) -> None:
        if self._acking:  # a failed mapping's last written batches: their acks still go out
            with contextlib.suppress(BaseException):
                await self._acks_sent()
        if self._recv is not None:
            self._recv.cancel()
            with contextlib.suppress(BaseException):
                await self._recv
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.consumer.close()
