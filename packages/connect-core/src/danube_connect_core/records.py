"""The values that flow through connectors: SourceRecord/SourceEnvelope/Offset out, SinkRecord in."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

from pydantic import BaseModel, TypeAdapter, ValidationError

from danube_connect_core.errors import InvalidData

__all__ = ["Offset", "PayloadKind", "SchemaMetadata", "SinkRecord", "SourceEnvelope", "SourceRecord"]

T = TypeVar("T")
PayloadKind = Literal["json", "string", "bytes", "number"]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One message a source wants published.

    ``payload`` is a JSON value, a ``str``, ``bytes`` or a number, as ``kind`` says; the runtime validates
    and serialises it according to the schema configured for ``topic`` (or by ``kind`` when there is none).
    ``key`` is the routing key (partition choice and KeyShared delivery). Builders return new records.
    """

    topic: str
    payload: Any
    kind: PayloadKind = "json"
    attributes: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None

    @classmethod
    def from_json(cls, topic: str, value: Any) -> SourceRecord:
        """A JSON record from a JSON value, a pydantic model or a dataclass instance."""
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        return cls(topic, value, "json")

    @classmethod
    def from_string(cls, topic: str, text: str) -> SourceRecord:
        return cls(topic, text, "string")

    @classmethod
    def from_bytes(cls, topic: str, data: bytes) -> SourceRecord:
        return cls(topic, bytes(data), "bytes")

    @classmethod
    def from_number(cls, topic: str, number: int | float) -> SourceRecord:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise TypeError("from_number takes an int or a float")
        return cls(topic, number, "number")

    def with_attribute(self, name: str, value: str) -> SourceRecord:
        return dataclasses.replace(self, attributes={**self.attributes, name: str(value)})

    def with_attributes(self, attributes: Mapping[str, str]) -> SourceRecord:
        return dataclasses.replace(
            self, attributes={**self.attributes, **{k: str(v) for k, v in attributes.items()}}
        )

    def with_key(self, key: str) -> SourceRecord:
        return dataclasses.replace(self, key=key)

    def with_topic(self, topic: str) -> SourceRecord:
        return dataclasses.replace(self, topic=topic)


@dataclass(frozen=True, slots=True, order=True)
class Offset:
    """A position in the external system: ``partition`` (a stream, table, file...) and ``position``.

    The runtime hands offsets back through ``commit()`` only when the record carrying it, and every record
    before it in the same ``partition``, has been acknowledged by the broker (invariant 1).
    """

    partition: str
    position: int


@dataclass(frozen=True, slots=True)
class SourceEnvelope:
    """A record plus the optional offset to commit once it is acknowledged.

    ``rejected`` is set (through :meth:`invalid`) by a connector that already knows the record can never
    be published, e.g. bytes that cannot be read as the topic's format: the delivery pipeline dead-letters
    it with that reason without validating it (``[errors] tolerance = "none"`` stops instead).

    ``ordering_key``: records with the same ordering key reach the broker in the order they were handed
    over; each is sent only once the one before it settled (acknowledged, or dead-lettered). Records of
    different keys, and records without one (None, the default), are published concurrently. It is not
    the routing key (``SourceRecord.key``), which picks the partition and is stored with the message:
    e.g. the Kafka source uses the Kafka key, or the Kafka partition, as ordering key. Semantics:
    :mod:`danube_connect_core.ordering`.
    """

    record: SourceRecord
    offset: Offset | None = None
    rejected: str | None = None
    ordering_key: str | None = None

    @classmethod
    def with_offset(cls, record: SourceRecord, offset: Offset) -> SourceEnvelope:
        return cls(record, offset)

    @classmethod
    def invalid(
        cls,
        record: SourceRecord,
        reason: str,
        offset: Offset | None = None,
        *,
        ordering_key: str | None = None,
    ) -> SourceEnvelope:
        """A record the connector could not make valid: it goes to the dead-letter topic with ``reason``."""
        return cls(record, offset, reason, ordering_key)

    @classmethod
    def of(cls, item: SourceEnvelope | SourceRecord) -> SourceEnvelope:
        return item if isinstance(item, SourceEnvelope) else cls(item)


@dataclass(frozen=True, slots=True)
class SchemaMetadata:
    """The registry schema a message was published with."""

    subject: str
    version: int
    schema_type: str
    schema_id: int


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """One message handed to a sink, already decoded by its schema.

    ``payload`` is a JSON value (json_schema, avro and schemaless JSON), ``str`` (string), ``bytes`` (bytes,
    or undecodable schemaless data) or a number. ``message_id`` is unique per message and stable across
    redeliveries: use it for idempotent writes (invariant 2). ``raw`` holds the bytes as they were on the
    topic. ``publish_time`` is in milliseconds since the epoch (as producers stamp it). ``request_id`` is
    the producer's sequence number for the message.
    """

    payload: Any
    topic: str
    partition: int | None
    offset: int
    publish_time: int
    producer_name: str
    attributes: Mapping[str, str]
    schema: SchemaMetadata | None
    key: str | None
    raw: bytes = b""
    subscription: str = ""
    request_id: int = 0

    @property
    def message_id(self) -> str:
        """``topic[:partition]:offset``, plus the producer's identity when the offset is 0.

        Reliable topics give every message its own log offset, so the offset identifies it. Non-reliable
        topics deliver every message with offset 0; there the producer name, publish time and request id
        tell messages apart. Those three are stored with the message, so the id of a reliable message at
        offset 0 is still the same on every redelivery.
        """
        where = self.topic if self.partition is None else f"{self.topic}:{self.partition}"
        if self.offset != 0:
            return f"{where}:{self.offset}"
        return f"{where}:0:{self.producer_name}:{self.publish_time}:{self.request_id}"

    def as_type(self, model: type[T]) -> T:
        """The payload validated into ``model`` (pydantic model, dataclass, TypedDict...).

        Raises :class:`InvalidData` when it does not fit, so the record is dead-lettered, not retried.
        """
        try:
            if isinstance(model, type) and issubclass(model, BaseModel):
                return cast(T, model.model_validate(self.payload))
            return TypeAdapter(model).validate_python(self.payload)
        except ValidationError as exc:
            raise InvalidData(
                f"payload does not match {getattr(model, '__name__', model)}: {exc.errors()[0]['msg']}"
            ) from exc
