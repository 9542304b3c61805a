"""Subscriptions and their dispatchers.

Consumer choice (both dispatch modes): Exclusive and Failover deliver to the first eligible consumer in
subscribe order (Exclusive only ever has one consumer name); Shared rotates round robin; KeyShared
hashes the message key (``routing_key``, else ``producer_name``) onto a consistent hash ring of the
eligible consumers whose ``key_filters`` globs match it (no filters = every key).

NonReliable (:class:`NonReliableSubscription`): at-most-once. A message goes into the chosen consumer's
bounded buffer or is dropped (buffer full, nobody subscribed); acks and nacks are ignored.

Reliable (:class:`ReliableSubscription`): at-least-once over the topic's durable log. See its docstring.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from danube_embedded_broker.config import BrokerConfig
from danube_embedded_broker.consumer import Consumer, Session
from danube_embedded_broker.metrics import BrokerMetrics
from danube_embedded_broker.selection import HashRing, RoundRobin, key_matches
from danube_embedded_broker.storage import CursorState, SubscriptionStore, TopicLog
from danube_embedded_broker.wire import pb

log = logging.getLogger(__name__)

SubType = pb.ConsumerRequest.SubscriptionType
EXCLUSIVE = SubType.Exclusive
SHARED = SubType.Shared
FAILOVER = SubType.Failover
KEY_SHARED = SubType.KeyShared
SUB_TYPE_NAMES: dict[int, str] = {
    EXCLUSIVE: "Exclusive",
    SHARED: "Shared",
    FAILOVER: "Failover",
    KEY_SHARED: "KeyShared",
}


#: Field number of ``StreamMessage.subscription_name`` (proto/DanubeApi.proto).
STREAM_MESSAGE_SUBSCRIPTION_NAME = 6


def encode_string_field(number: int, value: str) -> bytes:
    """A protobuf string field (tag, varint length, UTF-8), as the generated code would encode it."""
    data = value.encode()
    out = bytearray([number << 3 | 2])
    length = len(data)
    while length >= 0x80:
        out.append(length & 0x7F | 0x80)
        length >>= 7
    out.append(length)
    return bytes(out) + data


def message_key(message: pb.StreamMessage) -> str:
    """KeyShared key: the routing key when set, else the producer name."""
    if message.HasField("routing_key") and message.routing_key:
        return str(message.routing_key)
    return str(message.producer_name)


class Subscription:
    """State and consumer choice shared by both dispatch modes."""

    reliable = False

    def __init__(self, topic: str, name: str, sub_type: int, config: BrokerConfig, metrics: BrokerMetrics):
        self.topic = topic
        self.name = name
        self.sub_type = sub_type
        self.config = config
        self.metrics = metrics
        self.consumers: dict[int, Consumer] = {}
        self._round_robin = RoundRobin()
        self._ring = HashRing()

    # -- consumers -------------------------------------------------------------------------------
    def eligible(self) -> list[Consumer]:
        """Consumers that may receive a message now, in subscribe order."""
        return [c for c in self.consumers.values() if c.connected]

    def select(self, key: str) -> Consumer | None:
        candidates = self.eligible()
        if not candidates:
            return None
        if self.sub_type == SHARED:
            return self._round_robin.pick(candidates)
        if self.sub_type == KEY_SHARED:
            return self._ring.pick([c for c in candidates if key_matches(c, key)], key)
        return candidates[0]

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers[consumer.id] = consumer
        self.wake()

    def remove_consumer(self, consumer: Consumer) -> None:
        """Evict a consumer: its stream ends and its in-flight messages go back for redelivery."""
        consumer.evicted = True
        consumer.end_session()
        if consumer.session is not None:
            self.session_closed(consumer.session)
        self.consumers.pop(consumer.id, None)
        self.wake()

    def session_opened(self, session: Session) -> None:
        self.wake()

    def session_closed(self, session: Session) -> None:
        """Called once when a stream ends, whatever the reason."""
        self.wake()

    # -- messages ---------------------------------------------------------------------------------
    def wake(self) -> None:
        """Something changed that may allow dispatching (new message, ack, consumer)."""

    def deliver(self, message: pb.StreamMessage) -> None:
        """A non-reliable message was published (reliable subscriptions read the log instead)."""

    def ack(self, offset: int) -> None:
        """Acknowledge ``offset`` (no-op for non-reliable)."""

    def nack(self, offset: int, delay_ms: int | None, reason: str | None) -> None:
        """Negative-acknowledge ``offset`` (no-op for non-reliable)."""

    def backlog(self) -> int:
        return 0

    def start(self) -> None:
        """Start background work (reliable dispatch loop)."""

    async def close(self) -> None:
        """Stop background work and persist state; streams are ended by the caller."""


class NonReliableSubscription(Subscription):
    """At-most-once, in memory: each consumer has a buffer of ``config.consumer_buffer`` messages."""

    def eligible(self) -> list[Consumer]:
        # A consumer between Subscribe and its first stream still gets a (bounded) buffer, so the
        # messages published right after Subscribe are not lost; connected consumers come first.
        grace = self.config.subscribe_grace_ms / 1000
        connected = [c for c in self.consumers.values() if c.connected]
        waiting = [c for c in self.consumers.values() if not c.connected and c.awaiting_stream(grace)]
        return connected + waiting

    def deliver(self, message: pb.StreamMessage) -> None:
        consumer = self.select(message_key(message))
        if consumer is None:
            self.metrics.dropped(self.topic, self.name)
            return
        copy = pb.StreamMessage()
        copy.CopyFrom(message)
        copy.subscription_name = self.name
        limit = self.config.consumer_buffer
        if consumer.connected:
            assert consumer.session is not None
            accepted = consumer.session.offer(copy)
        elif len(consumer.prebuffer) < limit:
            consumer.prebuffer.append(copy)
            accepted = True
        else:
            accepted = False
        if accepted:
            self.metrics.delivered(self.topic)
        else:
            self.metrics.dropped(self.topic, self.name)

    def session_opened(self, session: Session) -> None:
        consumer = session.consumer
        while consumer.prebuffer:
            if not session.offer(consumer.prebuffer.popleft()):
                self.metrics.dropped(self.topic, self.name)
        consumer.prebuffer.clear()


class Status(enum.Enum):
    READY = "ready"  # waiting for a consumer (``due`` = earliest dispatch time)
    AWAITING_ACK = "awaiting_ack"  # sent; ``due`` = ack deadline
    EXHAUSTED = "exhausted"  # retry budget spent, poison policy pending or blocking


@dataclass(slots=True)
class Pending:
    """One message inside a reliable subscription's in-flight window."""

    offset: int
    #: the stored record plus this subscription's name, exactly the bytes the stream sends
    message: bytes
    key: str
    status: Status = Status.READY
    due: float = 0.0
    attempts: int = 0  # deliveries so far
    session: Session | None = None
    reason: str | None = None
    queued: bool = False  # in the subscription's ready heap


DeadLetterSink = Callable[[pb.StreamMessage], None]


class ReliableSubscription(Subscription):
    """At-least-once dispatch from the topic log.

    - A new subscription starts at the LATEST offset; its cursor (highest contiguous ack) plus the
      acks above it are journaled on every ack, so a restart resumes with exactly the unacked messages.
    - In-flight window: at most ``max_unacked_messages`` messages per subscription (as the real
      broker's dispatch window: shared by all consumers of a Shared subscription) are read from the log
      and not yet acked. Messages waiting for redelivery occupy the window too.
    - Ack timeout or nack -> redelivery after ``base * 2**(attempt-1)`` ms (at least the nack's
      ``delay_ms``), capped at ``redelivery_max_ms``. A message that fails after
      ``1 + max_redeliveries`` deliveries is poison: ``block`` keeps it in the window and stops the
      subscription (KeyShared: only its key) until it is acked or the broker restarts; ``drop`` acks it;
      ``dead_letter`` appends it to ``<topic>-dlq`` with ``x-original-*`` attributes, then acks it.
    - When a stream ends, the messages sent on it and not acked become due at once (to any consumer).
    - KeyShared: one message per key in flight; later messages of that key wait (per-key order).

    Scheduling: :meth:`wake` (a message, an ack, a consumer) schedules one :meth:`pump` on the event
    loop, however many wake-ups arrive before it runs, and a timer wakes it at the earliest ack deadline
    or redelivery time. A pass costs what changed, not the window's size: messages ready to go wait in a
    heap by offset (delivered in log order, redeliveries first), poison ones in a set, and the whole window
    is scanned only when a deadline may have passed (``_timer_at``: no deadline is earlier).
    """

    reliable = True

    def __init__(
        self,
        topic: str,
        name: str,
        sub_type: int,
        config: BrokerConfig,
        metrics: BrokerMetrics,
        topic_log: TopicLog,
        store: SubscriptionStore,
        state: CursorState,
        dead_letter: DeadLetterSink,
    ) -> None:
        super().__init__(topic, name, sub_type, config, metrics)
        self._log = topic_log
        self._store = store
        self.state = state
        self._dead_letter = dead_letter
        self._read_pos = state.cursor + 1
        self.window: dict[int, Pending] = {}
        self.blocked = False
        self._ack_timeout = config.ack_timeout_ms / 1000
        #: ``subscription_name`` encoded as a StreamMessage field: appended to a stored record (where it is
        #: unset), it makes the message this subscription delivers, with no decoding and re-encoding.
        self._name_field = encode_string_field(STREAM_MESSAGE_SUBSCRIPTION_NAME, name)
        #: offsets of READY messages that may be due (KeyShared scans the window instead)
        self._ready: list[int] = []
        #: offsets of EXHAUSTED messages (poison policy pending or blocking)
        self._exhausted: set[int] = set()
        #: no ack deadline or redelivery time in the window is earlier than this
        self._timer_at = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._closed = False
        self._storage_error: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self.wake()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._store.close(self.sub_type, self.state)

    def wake(self) -> None:
        if self._scheduled or self._closed or self._loop is None:
            return
        self._scheduled = True
        self._loop.call_soon(self._pass)

    def _pass(self) -> None:
        """One scheduled pump; a failed pass is retried after a second (or at the next wake-up)."""
        self._scheduled = False
        if self._closed:
            return
        retry_at = math.inf
        try:
            self.pump()
            self._storage_error = None
        except OSError as exc:
            # The disk refused a dead letter or an ack of the poison policy: the message stays in the
            # window and the pass is retried. One line per distinct error, not one per second.
            if str(exc) != self._storage_error:
                self._storage_error = str(exc)
                log.error("dispatch of %s/%s cannot write: %s; retrying", self.topic, self.name, exc)
            retry_at = time.monotonic() + 1.0
        except Exception:
            log.exception("dispatch of %s/%s failed; retrying", self.topic, self.name)
            retry_at = time.monotonic() + 1.0
        self._arm(min(self._timer_at, retry_at))

    def _arm(self, when: float) -> None:
        """Keep one timer, at ``when`` (monotonic, the event loop's clock); none for ``inf``."""
        timer = self._timer
        if timer is not None and timer.when() == when:
            return
        if timer is not None:
            timer.cancel()
            self._timer = None
        if when != math.inf and self._loop is not None:
            self._timer = self._loop.call_at(when, self.wake)

    # -- acknowledgements ---------------------------------------------------------------------------
    def ack(self, offset: int) -> None:
        pending = self.window.pop(offset, None)
        if pending is None and (offset < self._read_pos or offset >= self._log.next_offset):
            return  # already acked, or not a message of this topic
        try:
            self._record_ack(offset)  # OSError when the journal refuses it: acked in memory all the same
        finally:
            if pending is not None and pending.status is Status.EXHAUSTED:
                self._exhausted.discard(offset)
                self._update_blocked()
            self.wake()

    def nack(self, offset: int, delay_ms: int | None, reason: str | None) -> None:
        pending = self.window.get(offset)
        if pending is None or pending.status is not Status.AWAITING_ACK:
            return
        self._fail(pending, time.monotonic(), reason or "nack", delay_ms)
        self.wake()

    def _record_ack(self, offset: int) -> None:
        if self.state.ack(offset):
            self._store.record_ack(offset, self.sub_type, self.state)

    def backlog(self) -> int:
        """Messages in the log not acked by this subscription."""
        return max(0, self._log.next_offset - 1 - self.state.cursor - len(self.state.acked))

    # -- streams ------------------------------------------------------------------------------------
    def session_closed(self, session: Session) -> None:
        now = time.monotonic()
        for pending in self.window.values():
            if pending.session is session and pending.status is Status.AWAITING_ACK:
                pending.status = Status.READY
                pending.due = now
                pending.session = None
                pending.reason = "consumer disconnected"
                self._queue(pending)
        self.wake()

    # -- the dispatch loop --------------------------------------------------------------------------
    def _queue(self, pending: Pending) -> None:
        """A READY message due now goes on the ready heap (KeyShared scans the window instead)."""
        if not pending.queued and self.sub_type != KEY_SHARED:
            pending.queued = True
            heapq.heappush(self._ready, pending.offset)

    def _schedule(self, pending: Pending, now: float) -> None:
        """A READY message: on the heap when due, else the timer covers its time."""
        if pending.due <= now:
            self._queue(pending)
        elif pending.due < self._timer_at:
            self._timer_at = pending.due

    def _fail(self, pending: Pending, now: float, reason: str, delay_ms: int | None) -> None:
        pending.session = None
        pending.reason = reason
        if pending.attempts > self.config.max_redeliveries:
            pending.status = Status.EXHAUSTED
            self._exhausted.add(pending.offset)
            return
        backoff = self.config.redelivery_base_ms * (1 << max(0, pending.attempts - 1))
        delay = min(max(backoff, delay_ms or 0), self.config.redelivery_max_ms)
        pending.status = Status.READY
        pending.due = now + delay / 1000
        self._schedule(pending, now)

    def _update_blocked(self) -> None:
        self.blocked = self.config.poison_policy == "block" and bool(self._exhausted)

    def _scan(self, now: float) -> None:
        """Expire ack deadlines, queue what became due, and recompute the earliest time left."""
        timer_at = math.inf
        for pending in self.window.values():
            if pending.status is Status.AWAITING_ACK and pending.due <= now:
                self._fail(pending, now, "ack timeout", None)
            if pending.status is Status.EXHAUSTED:
                continue
            if pending.status is Status.READY and pending.due <= now:
                self._queue(pending)
            elif pending.due < timer_at:
                timer_at = pending.due
        self._timer_at = timer_at

    def _fill(self, now: float) -> None:
        limit = self.config.max_unacked_messages
        end = self._log.next_offset
        while len(self.window) < limit and self._read_pos < end:
            offset = self._read_pos
            self._read_pos += 1
            if self.state.is_acked(offset):
                continue
            body = self._log.read(offset)
            key = message_key(pb.StreamMessage.FromString(body)) if self.sub_type == KEY_SHARED else ""
            pending = Pending(offset, body + self._name_field, key, due=now)
            self.window[offset] = pending
            self._queue(pending)

    def _resolve_poison(self, pending: Pending) -> bool:
        """Apply the poison policy; ``True`` when the message left the window."""
        policy = self.config.poison_policy
        if policy == "block":
            if not self.blocked:
                log.warning(
                    "%s/%s: offset %d failed %d deliveries (%s); subscription blocked (poison policy block)",
                    self.topic, self.name, pending.offset, pending.attempts, pending.reason,
                )  # fmt: skip
            return False
        if policy == "dead_letter":
            self._dead_letter(self._dead_letter_message(pending))
            self.metrics.dead_lettered(self.topic, self.name)
        log.warning(
            "%s/%s: offset %d failed %d deliveries (%s); %s",
            self.topic, self.name, pending.offset, pending.attempts, pending.reason,
            "dead-lettered" if policy == "dead_letter" else "dropped",
        )  # fmt: skip
        self._exhausted.discard(pending.offset)
        del self.window[pending.offset]
        self._record_ack(pending.offset)
        return True

    def _dead_letter_message(self, pending: Pending) -> pb.StreamMessage:
        original = pb.StreamMessage.FromString(pending.message)
        message = pb.StreamMessage()
        message.CopyFrom(original)
        message.ClearField("subscription_name")
        message.attributes.update(
            {
                "x-original-topic": original.msg_id.topic_name,
                "x-original-subscription": self.name,
                "x-original-topic-offset": str(original.msg_id.topic_offset),
                "x-original-producer-id": str(original.msg_id.producer_id),
                "x-original-broker-addr": original.msg_id.broker_addr,
                "x-poison-policy": "dead_letter",
                "x-delivery-attempt": str(pending.attempts),
            }
        )
        if pending.reason:
            message.attributes["x-failure-reason"] = pending.reason
        message.msg_id.producer_id = 0
        return message

    def pump(self) -> float | None:
        """One pass: expire ack deadlines, refill the window, resolve poison, dispatch what is due.

        Returns seconds until the next timed event (``None``: wait for a wake-up).
        """
        now = time.monotonic()
        if now >= self._timer_at:
            self._scan(now)
        while True:
            self._fill(now)
            if not self._exhausted:
                break
            resolved = [p for p in list(self.window.values()) if p.status is Status.EXHAUSTED]
            if not any([self._resolve_poison(p) for p in resolved]):
                break
        self._update_blocked()
        if not self.blocked or self.sub_type == KEY_SHARED:
            if self.sub_type == KEY_SHARED:
                self._dispatch_key_shared(now)
            else:
                self._dispatch(now)
        return None if self._timer_at == math.inf else max(0.0, self._timer_at - now)

    def _sent(self, pending: Pending, session: Session, now: float) -> None:
        pending.status = Status.AWAITING_ACK
        pending.attempts += 1
        pending.due = now + self._ack_timeout
        pending.session = session
        if pending.due < self._timer_at:
            self._timer_at = pending.due
        self.metrics.delivered(self.topic)

    def _dispatch(self, now: float) -> None:
        """Exclusive, Failover, Shared: the ready heap in offset order, as long as a consumer takes them."""
        ready = self._ready
        window = self.window
        while ready:
            pending = window.get(ready[0])
            if pending is None or pending.status is not Status.READY:
                heapq.heappop(ready)  # acked, sent or poison since it was queued
                if pending is not None:
                    pending.queued = False
                continue
            if pending.due > now:  # a redelivery not due yet: the timer brings it back
                heapq.heappop(ready)
                pending.queued = False
                self._schedule(pending, now)
                continue
            consumer = self.select(pending.key)
            if consumer is None:
                return  # nobody connected: everything waits for a consumer
            session = consumer.session
            assert session is not None
            if not session.offer(pending.message):
                return  # a closed stream; its end wakes the subscription again
            heapq.heappop(ready)
            pending.queued = False
            self._sent(pending, session, now)

    def _dispatch_key_shared(self, now: float) -> None:
        """KeyShared: in window order, the first message of each key only (per-key order)."""
        busy_keys: set[str] = set()
        for pending in self.window.values():
            if pending.key in busy_keys:
                continue
            busy_keys.add(pending.key)
            if pending.status is not Status.READY or pending.due > now:
                continue
            consumer = self.select(pending.key)
            if consumer is None:
                continue
            session = consumer.session
            assert session is not None
            if not session.offer(pending.message):
                continue
            self._sent(pending, session, now)
