"""Value types of the public API: message ids, received messages, schema references.

(The subscription types are :class:`danube_connect_core.subscription.SubscriptionType`.)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..proto import DanubeApi_pb2 as pb

__all__ = ["MessageId", "ReceivedMessage", "SchemaReference"]


@dataclass(frozen=True, slots=True)
class MessageId:
    """What :meth:`Producer.send` returns once the broker acknowledged a message.

    ``topic`` is the partition topic the message went to (``/ns/t-part-2``, or ``/ns/t`` when not
    partitioned) and ``partition`` its number (None when not partitioned). The Danube protocol does not
    return the log offset on publish (MessageResponse carries only ``request_id``), so ``offset`` is the
    acknowledged request id: the producer's per-partition sequence number, increasing in send order.
    Consumers see the real log offset in :attr:`ReceivedMessage.offset`.
    """

    topic: str
    partition: int | None
    offset: int
    producer_id: int


@dataclass(frozen=True, slots=True)
class SchemaReference:
    """The schema subject a producer writes with: the latest version, a pinned version, or a minimum.

    Resolved to (schema_id, version) once when the producer is created; both are stamped on every message.
    Use the constructors :meth:`latest`, :meth:`pinned`, :meth:`minimum`.
    """

    subject: str
    pinned_version: int | None = None
    min_version: int | None = None

    def __post_init__(self) -> None:
        if self.pinned_version is not None and self.min_version is not None:
            raise ValueError("SchemaReference: pinned_version and min_version are exclusive")

    @classmethod
    def latest(cls, subject: str) -> SchemaReference:
        return cls(subject)

    @classmethod
    def pinned(cls, subject: str, version: int) -> SchemaReference:
        return cls(subject, pinned_version=version)

    @classmethod
    def minimum(cls, subject: str, version: int) -> SchemaReference:
        return cls(subject, min_version=version)

    def to_proto(self) -> pb.SchemaReference:
        if self.pinned_version is not None:
            return pb.SchemaReference(subject=self.subject, pinned_version=self.pinned_version)
        if self.min_version is not None:
            return pb.SchemaReference(subject=self.subject, min_version=self.min_version)
        return pb.SchemaReference(subject=self.subject, use_latest=True)


@dataclass(slots=True)
class ReceivedMessage:
    """A message delivered to a :class:`Consumer`.

    ``topic`` is the topic subscribed to; ``partition_topic`` the topic (partition) it came from, with
    ``partition`` its number or None. ``offset`` is the broker's log offset in that partition (always 0 on
    non-reliable topics). ``publish_time`` is passed through as the broker sends it (ms or µs).
    ``request_id`` is the producer's sequence number for the message, as stored with it by the broker.
    Acknowledge with :meth:`Consumer.ack` or :meth:`Consumer.nack`; ``msg_id`` is the wire MsgID they use.
    When the topic moved to another broker since (a Danube cluster reassigns the topics of a stopped broker),
    the ack is not sent and returns False: offsets are per broker log, and the new owner redelivers.
    """

    payload: bytes
    topic: str
    partition_topic: str
    partition: int | None
    offset: int
    publish_time: int
    producer_name: str
    attributes: dict[str, str]
    schema_id: int | None
    schema_version: int | None
    routing_key: str | None
    subscription: str
    msg_id: pb.MsgID
    request_id: int = 0
    broker_url: str = ""
    """The broker that delivered the message: acks and nacks go only there (set by the consumer)."""

    @classmethod
    def from_proto(
        cls, msg: pb.StreamMessage, topic: str, partition_topic: str, partition: int | None, subscription: str
    ) -> ReceivedMessage:
        return cls(
            payload=msg.payload,
            topic=topic,
            partition_topic=partition_topic,
            partition=partition,
            offset=msg.msg_id.topic_offset,
            publish_time=msg.publish_time,
            producer_name=msg.producer_name,
            attributes=dict(msg.attributes),
            schema_id=msg.schema_id if msg.HasField("schema_id") else None,
            schema_version=msg.schema_version if msg.HasField("schema_version") else None,
            routing_key=msg.routing_key if msg.HasField("routing_key") else None,
            subscription=msg.subscription_name or subscription,
            msg_id=msg.msg_id,
            request_id=msg.request_id,
        )
