"""From MQTT message to Danube publish to MQTT ack: routing, ordering keys, the pending bound, dead letters.

Guarantees, with the invariants of docs/architecture.md:

- Invariant 1: a QoS 1/2 message is acknowledged to the MQTT broker only after Danube acknowledged its
  publish (or, for a message that can never be published, its dead-letter record). Acks go out in
  arrival order (:class:`~danube_source_mqtt.ack_sequencer.AckSequencer`). A message whose publish
  failed for good is never acknowledged: the broker redelivers it (persistent session) after a restart.
- Once per message: a copy sent only for another mapping's subscription (overlapping MQTT 5 filters,
  see router.py) is acknowledged in its place in the ack order and not published.
- Ordering: for a mapping with one partition, each message is handed to the core with its MQTT topic as
  ordering key (``SourceEnvelope.ordering_key``), so messages of one MQTT topic are published one after
  the other, in arrival order (:mod:`danube_connect_core.ordering`); different MQTT topics, and
  partitioned mappings (no ordering key), publish concurrently. Messages are handed over in arrival order:
  one task per message, started in creation order, and the core joins the ordering key before it awaits.
- Invariant 3: at most ``max_pending_messages`` messages are between MQTT and Danube, and at most that
  many QoS 1/2 messages are unacknowledged (a message already in Danube may wait for an earlier one's
  ack): at that number the connection stops reading from its socket, and resumes at half of it. So a
  crash leaves at most ``max_pending_messages`` messages in Danube that the broker will send again.
- Invariants 4/5: a payload that cannot be read as its topic requires is handed to the core's delivery
  pipeline marked invalid (``SourceEnvelope.invalid``); the pipeline dead-letters it, or one its schema
  rejects, with ``error.*`` attributes (``[errors] tolerance = "none"`` stops instead), and the message is
  acknowledged only once its dead letter is (see :mod:`danube_connect_core.source_pipeline`).
- Danube outages: the pipeline retries with ``[retry]`` backoff; when the budget is exhausted the intake
  stops the runtime (exit 1): an unacknowledged message blocks every ack after it (MQTT acks in order),
  and only a new connection makes the broker send it again. Nothing is acked, nothing lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from danube_connect_core import (
    Fatal,
    InvalidData,
    Retryable,
    ShuttingDown,
    SourceEnvelope,
    SourceRecord,
    SourceSender,
)
from paho.mqtt.client import MQTTMessage

from danube_source_mqtt.ack_sequencer import AckSequencer, AckTicket
from danube_source_mqtt.connection import MqttConnection
from danube_source_mqtt.payload import build_record, mqtt_attributes
from danube_source_mqtt.router import Route, Router

__all__ = ["Intake"]

log = logging.getLogger("danube_connect.mqtt")


@dataclass(slots=True, eq=False)
class _Delivery:
    connection: MqttConnection
    sequencer: AckSequencer | None
    ticket: AckTicket | None
    route: Route
    topic: str
    payload: bytes
    attributes: dict[str, str]


class Intake:
    """Receives messages from the current MQTT connection and publishes them through the sender."""

    def __init__(self, router: Router, *, max_pending: int) -> None:
        self._router = router
        self.max_pending = max_pending
        self._resume_at = max(0, max_pending // 2)
        self._sender: SourceSender | None = None
        self._backlog: deque[_Delivery] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sequencers: dict[MqttConnection, AckSequencer] = {}
        self._connection: MqttConnection | None = None
        self._unmapped_warned: set[str] = set()
        self._stopping = False
        self.paused = False
        self.pending = 0
        self.peak_pending = 0
        self.fatal: Exception | None = None
        # Counters for tests and logs (the runtime owns the Prometheus metrics).
        self.received = 0
        self.published = 0
        self.dead_lettered = 0
        self.on_fatal: Callable[[Exception], None] | None = None

    # -- connection management (called by the session) ---------------------------------------------

    def attach(self, connection: MqttConnection) -> None:
        """The session opened ``connection``: apply the current pause state to it."""
        self._connection = connection
        self._sequencers.setdefault(connection, AckSequencer(connection.ack))
        if self.paused and self._held() <= self._resume_at and not self._stopping and self.fatal is None:
            self.paused = False  # the unacknowledged messages that paused intake went with the old one
        if self.paused or self._stopping or self.fatal is not None:
            connection.pause_reading()

    def detach(self, connection: MqttConnection) -> None:
        """The connection is gone: its unacknowledged messages will be redelivered on the next one."""
        self._sequencers.pop(connection, None)
        if self._connection is connection:
            self._connection = None

    def start(self, sender: SourceSender) -> None:
        """Streaming starts: publish what arrived before (held while the producers were created)."""
        self._sender = sender
        while self._backlog:
            self._dispatch(self._backlog.popleft())

    # -- the message path --------------------------------------------------------------------------

    def on_message(self, connection: MqttConnection, message: MQTTMessage) -> None:
        """paho's on_message, on the event loop. Never blocks: queues the delivery and returns."""
        sequencer = self._sequencers.get(connection)
        if sequencer is None:
            sequencer = self._sequencers[connection] = AckSequencer(connection.ack)
        ticket = sequencer.track(message.mid, message.qos) if message.qos > 0 else None
        try:
            topic = message.topic
        except UnicodeDecodeError:
            log.warning("dropping a message whose topic is not UTF-8 (not valid MQTT)")
            if ticket is not None:
                sequencer.done(ticket)
            return
        properties = getattr(message, "properties", None)
        identifiers = getattr(properties, "SubscriptionIdentifier", None) if properties else None
        route, duplicate = self._router.route_copy(topic, identifiers)
        if duplicate:
            # Another copy of this message (sent for the winning mapping's subscription) is published;
            # this one is only acknowledged, in its place in the ack order.
            if ticket is not None:
                sequencer.done(ticket)
            return
        if route is None:
            # A subscription left in a persistent session by an earlier configuration, or an overlap.
            if topic not in self._unmapped_warned and len(self._unmapped_warned) < 1000:
                self._unmapped_warned.add(topic)
                log.warning("no topic mapping matches MQTT topic %r: message acknowledged and dropped", topic)
            if ticket is not None:
                sequencer.done(ticket)
            return
        self.received += 1
        attributes = mqtt_attributes(topic, message.qos, bool(message.retain), message.properties)
        delivery = _Delivery(connection, sequencer, ticket, route, topic, bytes(message.payload), attributes)
        self.pending += 1
        self.peak_pending = max(self.peak_pending, self.pending)
        if self._held() >= self.max_pending:
            self._pause()
        if self._sender is None:
            self._backlog.append(delivery)
        else:
            self._dispatch(delivery)

    def _dispatch(self, delivery: _Delivery) -> None:
        if self._stopping:
            self._finished(delivery, ack=False)
            return
        task = asyncio.get_running_loop().create_task(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, d: _Delivery) -> None:
        """Hand one message to the pipeline and ack it once Danube holds it (or its dead letter); a message
        that is not published stays unacknowledged."""
        ack = False
        sender = self._sender
        assert sender is not None
        try:
            if self.fatal is not None or self._stopping:
                return
            published = await sender.send(self._item(d))
            if published.dead_lettered:
                self.dead_lettered += 1
                log.warning("MQTT message on %r dead-lettered: %s", d.topic, published.dead_letter_reason)
            else:
                self.published += 1
            ack = True
        except (ShuttingDown, InvalidData):  # intake stopped; or tolerance = none, the runtime is stopping
            pass
        except Retryable as exc:  # the pipeline's retries are exhausted
            self._fail(Fatal(f"publishing to Danube failed: {exc}"))
        except Fatal as exc:
            self._fail(exc)
        finally:
            self._finished(d, ack=ack)

    @staticmethod
    def _item(d: _Delivery) -> SourceEnvelope:
        """The message as the core's envelope; with one partition its MQTT topic is the ordering key."""
        topic = d.route.mapping.danube_topic
        order = d.topic if d.route.mapping.ordered else None
        try:
            record = build_record(topic, d.route.fmt, d.topic, d.payload, d.attributes)
        except InvalidData as exc:  # unreadable as the topic requires: the pipeline dead-letters it
            raw = SourceRecord(topic, d.payload, "bytes", d.attributes, key=d.topic)
            return SourceEnvelope.invalid(raw, exc.reason, ordering_key=order)
        return SourceEnvelope(record, ordering_key=order)

    def _finished(self, d: _Delivery, *, ack: bool) -> None:
        if ack and d.ticket is not None and d.sequencer is not None:
            d.sequencer.done(d.ticket)
        self.pending -= 1
        if self.paused and self._held() <= self._resume_at and not self._stopping and self.fatal is None:
            self._resume()

    # -- flow control and failure ------------------------------------------------------------------

    def _held(self) -> int:
        """Messages not yet in Danube, or QoS 1/2 messages not yet acknowledged on the current connection
        (MQTT 3.1.1 has no Receive Maximum: this is what bounds the duplicates after a crash)."""
        sequencer = self._sequencers.get(self._connection) if self._connection is not None else None
        return max(self.pending, sequencer.waiting if sequencer is not None else 0)

    def _pause(self) -> None:
        if not self.paused:
            log.info("%d messages pending: pausing MQTT intake", self.pending)
        self.paused = True
        if self._connection is not None:
            self._connection.pause_reading()

    def _resume(self) -> None:
        self.paused = False
        if self._connection is not None:
            self._connection.resume_reading()

    def _fail(self, exc: Exception) -> None:
        if self.fatal is None:
            self.fatal = exc
            log.error("MQTT intake stopped: %s", exc)
            if self._connection is not None:
                self._connection.pause_reading()
            if self.on_fatal is not None:
                self.on_fatal(exc)

    async def shutdown(self, within: float) -> None:
        """Stop intake; the runtime has already drained the pipeline, so what is left are messages that
        were refused (unacknowledged: the broker redelivers them). Waits at most ``within`` seconds."""
        self._stopping = True
        if self._connection is not None:
            self._connection.pause_reading()
        if self._tasks:
            _, still = await asyncio.wait(set(self._tasks), timeout=within)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        while self._backlog:
            self._finished(self._backlog.popleft(), ack=False)
