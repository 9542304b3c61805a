"""Request bodies: one JSON document per record, or a batch as a JSON array or NDJSON.

A JSON payload is sent as it is; a string payload as a JSON string. A bytes payload is sent raw
(``application/octet-stream``) in record mode and as a base64 JSON string in batches. With
``include_metadata`` every record becomes ``{"payload": ..., "metadata": {...}}``.

Integers beyond 64 bits are written exactly (``exact_json``), never rounded. A record whose value JSON
cannot hold (e.g. raw bytes nested in an Avro record) raises InvalidData, so the sink rejects that record
alone instead of failing the whole batch on every retry (invariants 4 and 5).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from danube_connect_core import InvalidData, SinkRecord, exact_json

from danube_sink_http.settings import BodyMode

__all__ = ["Body", "batch_body", "record_body", "record_json"]


@dataclass(frozen=True, slots=True)
class Body:
    data: bytes
    content_type: str


def _value(record: SinkRecord, include_metadata: bool) -> Any:
    payload = record.payload
    if isinstance(payload, bytes | bytearray):
        payload = base64.b64encode(payload).decode("ascii")
    if not include_metadata:
        return payload
    return {
        "payload": payload,
        "metadata": {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "message_id": record.message_id,
            "publish_time": record.publish_time,
            "producer_name": record.producer_name,
            "key": record.key,
            "attributes": dict(record.attributes),
        },
    }


def record_json(record: SinkRecord, include_metadata: bool) -> bytes:
    """The record's JSON document; InvalidData when JSON cannot hold its value."""
    try:
        return exact_json.dumps(_value(record, include_metadata))
    except TypeError as exc:
        raise InvalidData(f"payload cannot be written as JSON: {exc}") from exc


def record_body(record: SinkRecord, include_metadata: bool) -> Body:
    """The body of one record (``body_mode = "record"``); InvalidData as :func:`record_json`."""
    if isinstance(record.payload, bytes | bytearray) and not include_metadata:
        return Body(bytes(record.payload), "application/octet-stream")
    return Body(record_json(record, include_metadata), "application/json")


def batch_body(docs: Sequence[bytes], mode: BodyMode) -> Body:
    """The body of a batch of :func:`record_json` documents (``json_array`` or ``ndjson``)."""
    if mode == "ndjson":
        return Body(b"".join(d + b"\n" for d in docs), "application/x-ndjson")
    return Body(b"[" + b",".join(docs) + b"]", "application/json")
