"""Dead-letter records: the original bytes plus ``error.*`` attributes saying what was wrong.

Invariant 5: poison goes to the dead-letter topic with its reason and is acknowledged only after the
dead-letter publish was acknowledged (invariant 1), so nothing is lost and healthy records move on.
"""

from __future__ import annotations

from dataclasses import dataclass

from danube_connect_core.records import SinkRecord, SourceEnvelope, SourceRecord

__all__ = ["DeadLetter", "dead_letter_attributes", "dead_letter_payload", "source_dead_letter_attributes"]

ATTR_PREFIX = "error."


def dead_letter_attributes(record: SinkRecord, *, reason: str, connector: str, kind: str) -> dict[str, str]:
    """The original attributes plus ``error.reason``, ``error.connector``, ``error.kind``,
    ``error.topic``, ``error.partition``, ``error.offset``, ``error.publish_time``, ``error.subscription``,
    ``error.message_id`` and ``error.schema_subject`` (when the message had a schema)."""
    attrs = {k: v for k, v in record.attributes.items() if not k.startswith(ATTR_PREFIX)}
    attrs.update(
        {
            "error.reason": reason[:4000],
            "error.connector": connector,
            "error.kind": kind,
            "error.topic": record.topic,
            "error.partition": str(record.partition),
            "error.offset": str(record.offset),
            "error.publish_time": str(record.publish_time),
            "error.subscription": record.subscription,
            "error.message_id": record.message_id,
        }
    )
    if record.schema is not None:
        attrs["error.schema_subject"] = record.schema.subject
    return attrs


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record on its way to the dead-letter topic."""

    record: SinkRecord
    reason: str
    kind: str = "invalid_data"

    def attributes(self, connector: str) -> dict[str, str]:
        return dead_letter_attributes(self.record, reason=self.reason, connector=connector, kind=self.kind)


# -- source records ----------------------------------------------------------------------------------


def source_dead_letter_attributes(envelope: SourceEnvelope, *, reason: str, connector: str) -> dict[str, str]:
    """The dead letter of a source record that could not be published: its own attributes plus
    ``error.reason``, ``error.connector``, ``error.kind`` (``invalid_data``), ``error.topic`` (the topic it
    was meant for), ``error.payload_kind`` and, when it carried an offset, ``error.source_offset``
    (``partition:position``)."""
    record = envelope.record
    attrs = {k: v for k, v in record.attributes.items() if not k.startswith(ATTR_PREFIX)}
    attrs.update(
        {
            "error.reason": reason[:4000],
            "error.connector": connector,
            "error.kind": "invalid_data",
            "error.topic": record.topic,
            "error.payload_kind": record.kind,
        }
    )
    if envelope.offset is not None:
        attrs["error.source_offset"] = f"{envelope.offset.partition}:{envelope.offset.position}"
    return attrs


def dead_letter_payload(record: SourceRecord) -> bytes:
    """The record's payload as bytes, as close to what the source produced as possible: bytes as they are,
    text as UTF-8, JSON values and numbers as JSON (``repr`` when even that fails)."""
    from danube_connect_core.schema_codec import SchemalessCodec

    try:
        return SchemalessCodec().encode(record)
    except Exception:  # an unserialisable value: keep something a human can read
        return repr(record.payload).encode("utf-8", "replace")
