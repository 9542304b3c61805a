"""SinkRecord -> SurrealDB row: content, record id and the optional metadata object."""

from __future__ import annotations

from typing import Any

from danube_connect_core import InvalidData, SinkRecord
from surrealdb import RecordID

from danube_sink_surrealdb.settings import SurrealTopicMapping

__all__ = ["METADATA_FIELD", "SOURCE_ID_FIELD", "record_key", "to_row"]

#: Where ``include_metadata = true`` puts the message's metadata.
METADATA_FIELD = "_danube"
#: SurrealDB reserves ``id`` for the record id: a payload's own ``id`` is kept under this name when the
#: record id comes from elsewhere (the message id, or another ``id_field``).
SOURCE_ID_FIELD = "source_id"
#: Record ids longer than this are refused (SurrealDB keeps ids in its keys; keep them small).
_MAX_ID_LEN = 512
#: SurrealDB's int is 64-bit signed. The SDK's CBOR encoder takes integers up to 64 bits unsigned and the
#: database then stores 2**63..2**64-1 wrapped around (2**64 - 1 reads back as -1); beyond that it refuses
#: with an obscure "unknown CBOR tag". Such a value is refused here by name instead (invariant 4).
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


def record_key(record: SinkRecord, mapping: SurrealTopicMapping) -> str | int:
    """The record id within the table: the ``id_field`` value, else the stable message id (invariant 2).

    Raises InvalidData when ``id_field`` is missing from the payload or not a string or integer.
    """
    if mapping.id_field is None:
        return record.message_id
    value: Any = record.payload
    for part in mapping.id_field.split("."):
        if not isinstance(value, dict) or part not in value:
            raise InvalidData(f"id_field {mapping.id_field!r} is missing from the payload")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidData(f"id_field {mapping.id_field!r} must be a string or an integer")
    if isinstance(value, str) and not 0 < len(value) <= _MAX_ID_LEN:
        raise InvalidData(f"id_field {mapping.id_field!r} must have 1 to {_MAX_ID_LEN} characters")
    return value


def to_row(record: SinkRecord, mapping: SurrealTopicMapping) -> dict[str, Any]:
    """The row to write for ``record``. Raises InvalidData for a payload that cannot be a row.

    A JSON object becomes the row's fields; any other value (string, number, list, bytes) is stored under
    ``value``. The record id is a ``RecordID`` value (passed as a query variable, never spliced into
    SurrealQL), so any message id is a valid id.
    """
    payload = record.payload
    where = _int_beyond_64_bits(payload)
    if where is not None:
        raise InvalidData(
            f"integer at {where} is beyond SurrealDB's 64-bit int range [{_INT_MIN}, {_INT_MAX}]"
        )
    row: dict[str, Any] = dict(payload) if isinstance(payload, dict) else {"value": payload}
    key = record_key(record, mapping)
    if "id" in row and mapping.id_field != "id":
        row[SOURCE_ID_FIELD] = row.pop("id")
    else:
        row.pop("id", None)
    row["id"] = RecordID(mapping.table, key)
    if mapping.include_metadata:
        row[METADATA_FIELD] = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "publish_time": record.publish_time,
            "producer_name": record.producer_name,
            "message_id": record.message_id,
        }
    return row


def _int_beyond_64_bits(value: Any) -> str | None:
    """The JSON pointer of the first integer SurrealDB cannot store exactly, or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, v = stack.pop()
        if type(v) is int:
            if not _INT_MIN <= v <= _INT_MAX:
                return path or "/"
        elif isinstance(v, dict):
            stack.extend((f"{path}/{k}", child) for k, child in v.items())
        elif isinstance(v, list):
            stack.extend((f"{path}/{i}", child) for i, child in enumerate(v))
    return None
