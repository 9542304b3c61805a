"""One Kafka record -> the SourceRecord published to Danube (payload, routing key, attributes).

- Key: the Kafka key is the routing key (the partition of a partitioned Danube topic, and KeyShared
  delivery), so records with one key keep their order. A key that is not UTF-8 is carried base64-encoded
  with ``kafka.key_encoding = base64``. No key: no routing key.
- Attributes: ``kafka.topic``, ``kafka.partition``, ``kafka.offset``, ``kafka.timestamp`` (milliseconds
  since the epoch) and ``kafka.timestamp_type`` (``create`` or ``log_append``), plus one attribute per
  header, under the header's own name (so consumers migrating from Kafka read the same names). A name sent
  more than once holds a JSON array of its values in order; a value that is not UTF-8 is base64-encoded and
  its name listed in ``kafka.binary_headers``. A header named like one of the ``kafka.*`` attributes is
  dropped in favour of the attribute.
- Payload: the topic's ``[[schemas]]`` type decides how the value is read (a JSON Schema validates the
  bytes as received, in the core); without a schema the mapping's ``payload_format`` does. The reading is
  the core's (:mod:`danube_connect_core.payload_format`): values are never re-serialised, JSON goes out
  byte for byte. A value that cannot be read as required comes back as the reason it must be
  dead-lettered. A tombstone (no value) is an empty payload with ``kafka.tombstone``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import orjson
from danube_connect_core import InvalidData, ReadFormat, SourceRecord, read_format, read_payload

# ReadFormat and read_format are the core's, named here too for the intake and the connector.
__all__ = ["ReadFormat", "attributes_of", "build_record", "read_format", "routing_key"]

_TIMESTAMP_TYPES = {0: "create", 1: "log_append"}


def routing_key(key: bytes | None) -> tuple[str | None, bool]:
    """``(routing key, base64-encoded)`` for a Kafka key."""
    if not key:
        return None, False
    try:
        return key.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(key).decode("ascii"), True


def attributes_of(
    topic: str,
    partition: int,
    offset: int,
    timestamp: int,
    timestamp_type: int,
    headers: Sequence[tuple[str, bytes]],
) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if headers:
        values: dict[str, list[str]] = {}
        binary: list[str] = []
        for name, raw in headers:
            value = b"" if raw is None else bytes(raw)
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = base64.b64encode(value).decode("ascii")
                if name not in binary:
                    binary.append(name)
            values.setdefault(name, []).append(text)
        for name, vals in values.items():
            attrs[name] = vals[0] if len(vals) == 1 else orjson.dumps(vals).decode()
        if binary:
            attrs["kafka.binary_headers"] = ",".join(binary)
    attrs["kafka.topic"] = topic
    attrs["kafka.partition"] = str(partition)
    attrs["kafka.offset"] = str(offset)
    attrs["kafka.timestamp"] = str(timestamp)
    attrs["kafka.timestamp_type"] = _TIMESTAMP_TYPES.get(timestamp_type, str(timestamp_type))
    return attrs


def build_record(
    danube_topic: str,
    fmt: ReadFormat,
    value: bytes | None,
    key: str | None,
    attributes: dict[str, str],
) -> tuple[SourceRecord, str | None]:
    """``(record, None)``, or ``(record with the raw bytes, reason)`` when the value cannot be read as
    ``fmt`` (:func:`danube_connect_core.read_payload`; the caller dead-letters it). Never raises."""
    if value is None:
        attributes["kafka.tombstone"] = "true"
        value = b""
    try:
        return read_payload(danube_topic, fmt, value, attributes, key=key, noun="value"), None
    except InvalidData as exc:
        return SourceRecord(danube_topic, bytes(value), "bytes", attributes, key=key), exc.reason
