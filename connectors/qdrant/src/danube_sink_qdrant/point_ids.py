"""Deterministic point ids (invariant 2): a redelivered record overwrites its own point.

UUIDv5 in a fixed namespace of either the configured key field's value or the message id (topic,
partition, offset). A non-negative integer key is used as it is (Qdrant accepts unsigned integer ids).
"""

from __future__ import annotations

import uuid
from typing import Any

from danube_connect_core import InvalidData

__all__ = ["NAMESPACE", "point_id_for_key", "point_id_for_message"]

#: Never change: every stored point id derives from it.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "danube-connect:qdrant")

_MAX_U64 = 2**64 - 1


def point_id_for_message(message_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, message_id))


def point_id_for_key(value: Any, field: str) -> int | str:
    """The id of a key field value; raises InvalidData when it cannot be a key (missing, null, object)."""
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise InvalidData(f"id_field {field!r} must be a string or an integer, got {_kind(value)}")
    if isinstance(value, int) and 0 <= value <= _MAX_U64:
        return value
    if isinstance(value, float) and value.is_integer() and 0 <= value <= _MAX_U64:
        return int(value)
    text = str(value)
    if text == "":
        raise InvalidData(f"id_field {field!r} is empty")
    return str(uuid.uuid5(NAMESPACE, text))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return type(value).__name__
