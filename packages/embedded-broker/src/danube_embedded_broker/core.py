"""The broker's state and every client-visible operation, independent of gRPC plumbing.

All methods run on the event loop thread and never await in the middle of a state change, so no
locks are needed. Every refusal is a :class:`BrokerError` carrying the status code of
docs/wire-contract.md §2.

A write the data dir refuses (disk full, read-only, I/O error) is a refusal too (see
:func:`~danube_embedded_broker.errors.storage_error`): the RPC fails, nothing half-done is kept, the broker
keeps serving, and the same RPC succeeds once the disk accepts writes again (no restart needed).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import grpc

from danube_embedded_broker.config import BrokerConfig
from danube_embedded_broker.consumer import Consumer, Session
from danube_embedded_broker.errors import BrokerError, storage_error
from danube_embedded_broker.metrics import BrokerMetrics, Snapshot
from danube_embedded_broker.names import dead_letter_topic, parse_topic, partition_index
from danube_embedded_broker.schema import SchemaLink
from danube_embedded_broker.storage import (
    CursorState,
    Durability,
    SubscriptionStore,
    TopicLog,
    TopicMeta,
    scan_topics,
    topic_dir,
    write_topic_meta,
)
from danube_embedded_broker.subscription import (
    EXCLUSIVE,
    SUB_TYPE_NAMES,
    NonReliableSubscription,
    ReliableSubscription,
    Subscription,
)
from danube_embedded_broker.topic import RELIABLE, STRATEGY_NAMES, Producer, Topic
from danube_embedded_broker.wire import pb

log = logging.getLogger(__name__)

_NOT_FOUND = grpc.StatusCode.NOT_FOUND
_INVALID = grpc.StatusCode.INVALID_ARGUMENT


class BrokerCore:
    """Namespaces, topics, producers and consumers of one broker."""

    def __init__(
        self, config: BrokerConfig, data_dir: Path, url: str, metrics: BrokerMetrics, schemas: SchemaLink
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.url = url
        self.metrics = metrics
        self.schemas = schemas
        self.durability = Durability(config.fsync)
        self.namespaces = set(config.all_namespaces)
        self.topics: dict[str, Topic] = {}
        self.producers: dict[int, Producer] = {}
        self.consumers: dict[int, Consumer] = {}
        self.closing = False
        #: "errno:file" of the storage errors logged since the last successful write (log them once).
        self._storage_errors: set[str] = set()
        metrics.register_gauges(self.snapshot)

    # -- startup / shutdown ---------------------------------------------------------------------------
    def load(self) -> None:
        """Reopen the topics and subscriptions stored under ``data_dir`` (needs a running loop)."""
        for directory, meta in scan_topics(self.data_dir):
            try:
                name = parse_topic(meta.name)
            except BrokerError:
                log.error("skipping stored topic with invalid name %r", meta.name)
                continue
            self.namespaces.add(name.namespace)  # its namespace existed when it was created
            topic = self._open_topic(meta.name, meta.dispatch_strategy, directory)
            if topic.log is None:
                continue
            for sub_name in SubscriptionStore.names_in(directory / "subscriptions"):
                store = SubscriptionStore(directory / "subscriptions", sub_name, self.durability)
                loaded = store.load()
                if loaded is None:
                    continue
                sub_type, state = loaded
                self._add_reliable_subscription(topic, sub_name, sub_type, store, state)
            log.info("loaded topic %s: %d messages, %d subscriptions", meta.name, len(topic.log),
                     len(topic.subscriptions))  # fmt: skip

    def end_streams(self) -> None:
        """End every open stream (clients see the stream finish)."""
        for consumer in self.consumers.values():
            if consumer.session is not None:
                self.release_session(consumer.session)

    async def close(self) -> None:
        """End streams, persist every subscription and close every file.

        A file the disk refuses to write (full, read-only) is logged and closed anyway; what was stored
        before stays loadable (a subscription's old snapshot plus its journal hold its journaled acks).
        """
        self.closing = True
        self.end_streams()
        for topic in self.topics.values():
            for sub in topic.subscriptions.values():
                try:
                    await sub.close()
                except OSError as exc:
                    log.error("cannot save subscription %s of %s on close: %s", sub.name, topic.name, exc)
            if topic.log is not None:
                try:
                    topic.log.close()
                except OSError as exc:
                    log.error("cannot flush %s on close: %s", topic.log.path, exc)
        self.durability.sync_dirty()

    def sync(self) -> None:
        """fsync whatever was written since the last call (``interval`` fsync policy)."""
        self.durability.sync_dirty()

    # -- helpers --------------------------------------------------------------------------------------
    def _new_id(self, taken: Iterable[int]) -> int:
        used = set(taken)
        while True:
            candidate = secrets.randbits(63) or 1
            if candidate not in used:
                return candidate

    def _check_name(self, topic: str) -> str:
        name = parse_topic(topic)
        if name.namespace not in self.namespaces:
            raise BrokerError(
                grpc.StatusCode.UNAVAILABLE,
                f"namespace {name.namespace!r} of topic {topic!r} does not exist on this broker",
            )
        return name.full

    def _open_topic(self, name: str, strategy: int, directory: Path) -> Topic:
        topic_log = TopicLog(directory / "log.dat", self.durability) if strategy == RELIABLE else None
        topic = Topic(name, strategy, directory, topic_log)
        self.topics[name] = topic
        return topic

    def _create_topic(self, name: str, strategy: int) -> Topic:
        parsed = parse_topic(name)
        directory = topic_dir(self.data_dir, parsed.namespace, parsed.local)
        write_topic_meta(directory, TopicMeta(name, strategy), self.config.fsync)
        log.info("created topic %s (%s)", name, STRATEGY_NAMES.get(strategy, strategy))
        return self._open_topic(name, strategy, directory)

    def _add_reliable_subscription(
        self, topic: Topic, name: str, sub_type: int, store: SubscriptionStore, state: CursorState
    ) -> ReliableSubscription:
        assert topic.log is not None
        sub = ReliableSubscription(
            topic.name, name, sub_type, self.config, self.metrics, topic.log, store, state,
            dead_letter=lambda message: self._dead_letter(topic.name, message),
        )  # fmt: skip
        topic.subscriptions[name] = sub
        if self.config.poison_policy == "dead_letter":
            self._dead_letter_topic(topic.name)
        sub.start()
        return sub

    def _dead_letter_topic(self, source: str) -> Topic:
        name = dead_letter_topic(source, self.config.dead_letter_suffix)
        topic = self.topics.get(name)
        if topic is None:
            topic = self._create_topic(name, RELIABLE)
        return topic

    def _dead_letter(self, source: str, message: pb.StreamMessage) -> None:
        topic = self._dead_letter_topic(source)
        message.msg_id.topic_name = topic.name
        message.msg_id.broker_addr = self.url
        topic.publish(message)
        self.metrics.published(topic.name)

    # -- discovery ------------------------------------------------------------------------------------
    def lookup(self, topic: str) -> str:
        """The URL to connect to for ``topic`` (always this broker).

        INVALID_ARGUMENT for a bad name; NOT_FOUND when the topic does not exist, as a real Danube broker
        answers (clients then create the topic through their service URL).
        """
        name = parse_topic(topic).full
        if name not in self.topics:
            raise BrokerError(_NOT_FOUND, f"Unable to find the requested topic: {name}")
        return self.url

    def topic_exists(self, topic: str) -> bool:
        """The topic, or partitions of it, exist (used by the schema registry's topic RPCs)."""
        try:
            return bool(self.partitions(topic))
        except BrokerError:
            return False

    def partitions(self, topic: str) -> list[str]:
        """``[topic]`` if it exists, else its ``-part-N`` topics in partition order, else ``[]``."""
        name = parse_topic(topic).full
        if name in self.topics:
            return [name]
        found = [(partition_index(name, t), t) for t in self.topics]
        return [t for i, t in sorted((i, t) for i, t in found if i is not None)]

    # -- producers ------------------------------------------------------------------------------------
    def create_producer(self, req: pb.ProducerRequest) -> int:
        """Attach a producer (same name on the same topic: same id); creates the topic if allowed.

        Errors: INVALID_ARGUMENT (names), UNAVAILABLE (namespace), NOT_FOUND (auto-create off),
        FAILED_PRECONDITION (dispatch strategy differs from the topic's), PERMISSION_DENIED (exclusive
        access conflict), the registry's status for a bad schema reference.
        """
        self._check_open()
        name = self._check_name(req.topic_name)
        if not req.producer_name:
            raise BrokerError(grpc.StatusCode.INVALID_ARGUMENT, "producer_name must not be empty")
        topic = self.topics.get(name)
        if topic is not None and topic.strategy != req.dispatch_strategy:
            raise BrokerError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"topic {name} uses {STRATEGY_NAMES.get(topic.strategy)} dispatch; the producer asked for "
                f"{STRATEGY_NAMES.get(req.dispatch_strategy, req.dispatch_strategy)}",
            )
        existing = topic.producers.get(req.producer_name) if topic is not None else None
        if existing is not None:
            return existing.id
        schema: tuple[int, int] | None = None
        if req.HasField("schema_ref") and req.schema_ref.subject:
            schema = self.schemas.resolve(req.schema_ref)
        if topic is None:
            if not self.config.auto_create_topics:
                raise BrokerError(_NOT_FOUND, f"topic {name} does not exist (auto-create is off)")
            try:
                topic = self._create_topic(name, req.dispatch_strategy)
            except OSError as exc:
                # Retried by the client: a later attempt rewrites the metadata and reopens the log.
                self._storage_failed(f"cannot create topic {name}", exc)
        exclusive = pb.ProducerAccessMode.Exclusive
        if topic.producers and (
            req.producer_access_mode == exclusive
            or any(p.access_mode == exclusive for p in topic.producers.values())
        ):
            raise BrokerError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"topic {name} already has an exclusive producer or other producers",
            )
        producer = Producer(
            self._new_id(self.producers), req.producer_name, name, req.producer_access_mode,
            schema[0] if schema else None, schema[1] if schema else None,
        )  # fmt: skip
        topic.producers[producer.name] = producer
        self.producers[producer.id] = producer
        if schema is not None:
            try:
                self.schemas.bind_topic(name, req.schema_ref.subject)
            except OSError as exc:  # bound in memory; saved with the registry's next successful write
                log.warning("cannot save the schema subject of %s: %s", name, exc)
        log.info("producer %s (%d) attached to %s", producer.name, producer.id, name)
        return producer.id

    def send(self, message: pb.StreamMessage) -> None:
        """Store and dispatch one message.

        Errors: NOT_FOUND (unknown producer id), INVALID_ARGUMENT (payload over ``max_message_bytes``),
        PERMISSION_DENIED (schema validation policy), RESOURCE_EXHAUSTED (disk full) or UNAVAILABLE
        (any other storage error) when the log write failed: then nothing was stored.
        """
        self._check_open()
        producer = self.producers.get(message.msg_id.producer_id)
        if producer is None:
            raise BrokerError(_NOT_FOUND, f"producer {message.msg_id.producer_id} does not exist")
        if len(message.payload) > self.config.max_message_bytes:
            raise BrokerError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"message payload of {len(message.payload)} bytes exceeds the limit of "
                f"{self.config.max_message_bytes} bytes",
            )
        topic = self.topics[producer.topic]
        schema_id = message.schema_id if message.HasField("schema_id") else None
        version = message.schema_version if message.HasField("schema_version") else None
        self.schemas.check_publish(topic.name, message.payload, schema_id, version)
        message.msg_id.topic_name = topic.name
        message.msg_id.broker_addr = self.url
        if not message.producer_name:
            message.producer_name = producer.name
        if message.publish_time == 0:
            message.publish_time = int(time.time() * 1000)
        message.ClearField("subscription_name")
        try:
            topic.publish(message)
        except OSError as exc:
            self._storage_failed(f"cannot store the message for {topic.name}", exc)
        self._storage_ok()
        self.metrics.published(topic.name)

    # -- consumers ------------------------------------------------------------------------------------
    def subscribe(self, req: pb.ConsumerRequest) -> int:
        """Register a consumer (same name: same id, its old stream ends). Never creates a topic.

        Errors: INVALID_ARGUMENT, UNAVAILABLE (namespace), NOT_FOUND (topic), PERMISSION_DENIED
        (an Exclusive subscription already owned by another consumer name).
        """
        self._check_open()
        name = self._check_name(req.topic_name)
        if not req.consumer_name or not req.subscription:
            raise BrokerError(grpc.StatusCode.INVALID_ARGUMENT, "consumer_name and subscription are required")
        topic = self.topics.get(name)
        if topic is None:
            raise BrokerError(_NOT_FOUND, f"topic {name} does not exist")
        if req.subscription_type not in SUB_TYPE_NAMES:
            raise BrokerError(_INVALID, f"bad subscription_type {req.subscription_type}")
        sub = topic.subscriptions.get(req.subscription)
        if sub is not None and sub.sub_type != req.subscription_type:
            log.info(
                "subscription %s of %s is %s; ignoring the requested %s", sub.name, name,
                SUB_TYPE_NAMES[sub.sub_type], SUB_TYPE_NAMES[req.subscription_type],
            )  # fmt: skip
        if sub is not None:
            for consumer in sub.consumers.values():
                if consumer.name == req.consumer_name:
                    return self._take_over(consumer, req)
            if sub.sub_type == EXCLUSIVE:
                self._claim_exclusive(sub, req.consumer_name)
        else:
            try:
                sub = self._create_subscription(topic, req.subscription, req.subscription_type)
            except OSError as exc:
                self._storage_failed(f"cannot create subscription {req.subscription} of {name}", exc)
        consumer = Consumer(self._new_id(self.consumers), req.consumer_name, sub, tuple(req.key_filters))
        self.consumers[consumer.id] = consumer
        sub.add_consumer(consumer)
        log.info("consumer %s (%d) subscribed to %s/%s", consumer.name, consumer.id, name, sub.name)
        return consumer.id

    def _create_subscription(self, topic: Topic, name: str, sub_type: int) -> Subscription:
        if topic.log is None:
            sub: Subscription = NonReliableSubscription(topic.name, name, sub_type, self.config, self.metrics)
            topic.subscriptions[name] = sub
            return sub
        store = SubscriptionStore(topic.directory / "subscriptions", name, self.durability)
        state = CursorState(cursor=topic.log.next_offset - 1)  # a new subscription starts at LATEST
        store.write_snapshot(sub_type, state)
        return self._add_reliable_subscription(topic, name, sub_type, store, state)

    def _take_over(self, consumer: Consumer, req: pb.ConsumerRequest) -> int:
        if consumer.session is not None:
            self.release_session(consumer.session)
        consumer.key_filters = tuple(req.key_filters)
        consumer.awaiting_stream_since = time.monotonic()
        log.info("consumer %s (%d) re-subscribed", consumer.name, consumer.id)
        return consumer.id

    def _claim_exclusive(self, sub: Subscription, consumer_name: str) -> None:
        grace = self.config.subscribe_grace_ms / 1000
        for other in sub.consumers.values():
            if other.connected or other.awaiting_stream(grace):
                raise BrokerError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"exclusive subscription {sub.name} of {sub.topic} is held by consumer {other.name!r}",
                )
        for other in list(sub.consumers.values()):
            log.info("evicting disconnected consumer %s from exclusive subscription %s", other.name, sub.name)
            sub.remove_consumer(other)
            self.consumers.pop(other.id, None)

    def open_session(self, consumer_id: int) -> Session:
        """Start the stream of a consumer (ending its previous one). NOT_FOUND for an unknown id."""
        self._check_open()
        consumer = self.consumers.get(consumer_id)
        if consumer is None or consumer.evicted:
            raise BrokerError(_NOT_FOUND, f"consumer {consumer_id} does not exist")
        if consumer.session is not None:
            self.release_session(consumer.session)
        sub = consumer.subscription
        session = Session(consumer, self.config.consumer_buffer if not sub.reliable else None)
        consumer.session = session
        consumer.awaiting_stream_since = None
        sub.session_opened(session)
        return session

    def release_session(self, session: Session) -> None:
        """End a stream (idempotent): its unacked reliable messages become due for redelivery at once."""
        session.close()
        consumer = session.consumer
        if consumer.session is session:
            consumer.session = None
            consumer.subscription.session_closed(session)

    def _subscription(self, msg_id: pb.MsgID, subscription: str) -> Subscription:
        topic = self.topics.get(msg_id.topic_name)
        if topic is None:
            raise BrokerError(_NOT_FOUND, f"topic {msg_id.topic_name!r} does not exist")
        sub = topic.subscriptions.get(subscription)
        if sub is None:
            raise BrokerError(_NOT_FOUND, f"subscription {subscription!r} of {topic.name} does not exist")
        return sub

    def ack(self, req: pb.AckRequest) -> None:
        """Acknowledge; idempotent. NOT_FOUND for an unknown topic or subscription.

        When the ack journal refuses the write: RESOURCE_EXHAUSTED / UNAVAILABLE. The message counts as
        acked for this run (it is not redelivered now) and becomes durable with the subscription's next
        snapshot; a restart before that redelivers it (at-least-once, invariant 1).
        """
        self._check_open()
        sub = self._subscription(req.msg_id, req.subscription_name)
        try:
            sub.ack(req.msg_id.topic_offset)
        except OSError as exc:
            self._storage_failed(
                f"cannot record the ack of offset {req.msg_id.topic_offset} for {sub.topic}/{sub.name}",
                exc,
                consequence="it may be redelivered after a broker restart",
            )

    def nack(self, req: pb.NackRequest) -> None:
        """Negative-acknowledge: redelivery after max(backoff, delay_ms). NOT_FOUND as for ack."""
        self._check_open()
        sub = self._subscription(req.msg_id, req.subscription_name)
        delay = req.delay_ms if req.HasField("delay_ms") else None
        reason = req.reason if req.HasField("reason") else None
        sub.nack(req.msg_id.topic_offset, delay, reason)

    # -- health ---------------------------------------------------------------------------------------
    def is_alive(self, client: int, client_id: int) -> bool:
        if client == pb.HealthCheckRequest.ClientType.Producer:
            return client_id in self.producers
        consumer = self.consumers.get(client_id)
        return consumer is not None and not consumer.evicted

    def _check_open(self) -> None:
        if self.closing:
            raise BrokerError(grpc.StatusCode.UNAVAILABLE, "broker is shutting down")

    def _storage_failed(self, action: str, exc: OSError, consequence: str = "nothing was stored") -> NoReturn:
        """Raise the client's error for a refused write; logged once per outage and per distinct error
        (every producer retrying into a full disk would otherwise flood the log)."""
        error = storage_error(action, exc, consequence)
        key = f"{exc.errno}:{exc.filename}"
        if key not in self._storage_errors:
            self._storage_errors.add(key)
            log.error("%s (logged once until writes succeed again)", error.message)
        raise error from exc

    def _storage_ok(self) -> None:
        if self._storage_errors:
            self._storage_errors.clear()
            log.info("the data dir accepts writes again")

    # -- metrics --------------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        backlog: dict[tuple[str, str], int] = {}
        producers: dict[str, int] = {}
        consumers: dict[str, int] = {}
        for topic in list(self.topics.values()):
            producers[topic.name] = len(topic.producers)
            consumers[topic.name] = 0
            for sub in list(topic.subscriptions.values()):
                backlog[(topic.name, sub.name)] = sub.backlog()
                consumers[topic.name] += len(sub.consumers)
        return Snapshot(backlog, producers, consumers)
