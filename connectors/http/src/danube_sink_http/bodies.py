"""Request bodies: one JSON document per record, or a batch as a JSON array or NDJSON.

A JSON payload is sent as it is; a string payload as a JSON string. A bytes payload is sent raw
(``application/octet-stream``) in record mode and as a base64 JSON string in batches. With
``include_metadata`` every record becomes ``{"payload": ..., "metadata": {...}}``.

Integers beyond 64 bits are written exactly (``exact_json``), never rounded. A record whose value JSON
cannot hold (e.g. raw bytes nested in an Avro record) raises InvalidData naming it, so it is dead-lettered
instead of failing the whole batch on every retry (invariants 4 and 5).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from danube_connect_core import InvalidData, SinkRecord, exact_json

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


def _encoded(records: Sequence[SinkRecord], include_metadata: bool) -> list[bytes]:
    """Each record's JSON; InvalidData naming every record that JSON cannot hold."""
    out: list[bytes] = []
    reasons: dict[str, str] = {}
    bad: list[SinkRecord] = []
    for r in records:
        try:
            out.append(exact_json.dumps(_value(r, include_metadata)))
        except TypeError as exc:
            reasons[r.message_id] = f"payload cannot be written as JSON: {exc}"
            bad.append(r)
    if bad:
        raise InvalidData(reasons[bad[0].message_id], records=bad, reasons=reasons)
    return out


def record_body(record: SinkRecord, include_metadata: bool) -> Body:
    if isinstance(record.payload, bytes | bytearray) and not include_metadata:
        return Body(bytes(record.payload), "application/octet-stream")
    return Body(_encoded([record], include_metadata)[0], "application/json")


def batch_body(records: Sequence[SinkRecord], mode: BodyMode, include_metadata: bool) -> Body:
    docs = _encoded(records, include_metadata)
    if mode == "ndjson":
        return Body(b"".join(d + b"\n" for d in docs), "application/x-ndjson")
    return Body(b"[" + b",".join(docs) + b"]", "application/json")
