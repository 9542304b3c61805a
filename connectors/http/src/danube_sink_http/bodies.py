"""Request bodies: one JSON document per record, or a batch as a JSON array or NDJSON.

A JSON payload is sent as it is; a string payload as a JSON string. A bytes payload is sent raw
(``application/octet-stream``) in record mode and as a base64 JSON string in batches. With
``include_metadata`` every record becomes ``{"payload": ..., "metadata": {...}}``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from danube_connect_core.records import SinkRecord

from danube_sink_http.settings import BodyMode

__all__ = ["Body", "batch_body", "record_body"]


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


def record_body(record: SinkRecord, include_metadata: bool) -> Body:
    if isinstance(record.payload, bytes | bytearray) and not include_metadata:
        return Body(bytes(record.payload), "application/octet-stream")
    return Body(orjson.dumps(_value(record, include_metadata)), "application/json")


def batch_body(records: Sequence[SinkRecord], mode: BodyMode, include_metadata: bool) -> Body:
    values = [_value(r, include_metadata) for r in records]
    if mode == "ndjson":
        return Body(b"".join(orjson.dumps(v) + b"\n" for v in values), "application/x-ndjson")
    return Body(orjson.dumps(values), "application/json")
