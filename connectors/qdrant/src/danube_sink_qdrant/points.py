"""One SinkRecord -> one Qdrant point (id, vector(s), payload); InvalidData when the record cannot be one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from danube_connect_core import InvalidData, SinkRecord

from danube_sink_qdrant.field_path import MISSING, get_path, without_paths
from danube_sink_qdrant.point_ids import point_id_for_key, point_id_for_message
from danube_sink_qdrant.settings import QdrantTopicMapping

__all__ = ["PointData", "to_point"]


@dataclass(frozen=True, slots=True)
class PointData:
    """What is upserted: ``vector`` is a list (unnamed) or a dict name -> list (named vectors)."""

    id: int | str
    vector: list[float] | dict[str, list[float]]
    payload: dict[str, Any]


def to_point(record: SinkRecord, mapping: QdrantTopicMapping, dimensions: dict[str, int]) -> PointData:
    """Build the point of ``record``. ``dimensions`` maps vector name (``""`` = unnamed) -> size."""
    payload = record.payload
    if not isinstance(payload, dict):
        raise InvalidData(f"payload must be a JSON object, got {type(payload).__name__}")
    fields = mapping.vector_fields()
    vectors: dict[str, list[float]] = {}
    for name, field in fields.items():
        vectors[name] = _vector(get_path(payload, field), field, dimensions.get(name))
    if mapping.id_field is not None:
        key = get_path(payload, mapping.id_field)
        if key is MISSING:
            raise InvalidData(f"id_field {mapping.id_field!r} is missing")
        point_id = point_id_for_key(key, mapping.id_field)
    else:
        point_id = point_id_for_message(record.message_id)
    if mapping.payload_fields is not None:
        kept = {}
        for path in mapping.payload_fields:
            value = get_path(payload, path)
            if value is not MISSING:
                kept[path] = value
    else:
        kept = without_paths(payload, list(fields.values()))
    if mapping.include_metadata:
        kept[mapping.metadata_field] = _metadata(record)
    vector: list[float] | dict[str, list[float]] = vectors if mapping.vectors is not None else vectors[""]
    return PointData(point_id, vector, kept)


def _vector(value: Any, field: str, dimension: int | None) -> list[float]:
    if value is MISSING:
        raise InvalidData(f"vector field {field!r} is missing")
    if not isinstance(value, list):
        raise InvalidData(f"vector field {field!r} must be an array of numbers, got {type(value).__name__}")
    out: list[float] = []
    for i, x in enumerate(value):
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise InvalidData(f"vector field {field!r}[{i}] is not a number ({type(x).__name__})")
        f = float(x)
        if not math.isfinite(f):
            raise InvalidData(f"vector field {field!r}[{i}] is not finite")
        out.append(f)
    if dimension is not None and len(out) != dimension:
        raise InvalidData(
            f"vector field {field!r} has dimension {len(out)}, the collection expects {dimension}"
        )
    if not out:
        raise InvalidData(f"vector field {field!r} is empty")
    return out


def _metadata(record: SinkRecord) -> dict[str, Any]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "message_id": record.message_id,
        "publish_time": record.publish_time,
        "key": record.key,
        "attributes": dict(record.attributes),
    }
