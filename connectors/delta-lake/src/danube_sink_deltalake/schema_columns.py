"""Columns derived from a topic's JSON Schema (when a mapping lists no columns).

Each top-level property becomes a column named after it (``$.<name>``): ``string`` (``format: date-time``
-> timestamp, ``format: date`` -> date), ``integer`` -> int64, ``number`` -> float64, ``boolean``,
``object``/``array``/anything else -> json text. A property is non-nullable only when it is ``required``
and its type does not allow ``null``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from danube_sink_deltalake.settings import ColumnMapping, ColumnType

__all__ = ["columns_from_json_schema", "load_json_schema"]

_SAFE = re.compile(r"[^A-Za-z0-9_]")


def load_json_schema(path: Path) -> dict[str, Any]:
    """The schema document at ``path``; ValueError with a short reason when it is unusable."""
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a JSON Schema object")
    return doc


def columns_from_json_schema(schema: dict[str, Any]) -> list[ColumnMapping]:
    props = schema.get("properties")
    if schema.get("type") not in (None, "object") or not isinstance(props, dict) or not props:
        raise ValueError("the JSON Schema must describe an object with properties to derive columns")
    required = set(schema.get("required") or [])
    out: list[ColumnMapping] = []
    for name, spec in props.items():
        spec = spec if isinstance(spec, dict) else {}
        types = spec.get("type", [])
        types = [types] if isinstance(types, str) else list(types)
        non_null = [t for t in types if t != "null"]
        kind = _kind(non_null[0] if len(non_null) == 1 else None, spec.get("format"))
        column = _SAFE.sub("_", name)
        if column[:1].isdigit():
            column = "_" + column
        path = f"$.{name}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", name) else f"$['{name}']"
        nullable = name not in required or "null" in types
        out.append(ColumnMapping(path=path, column=column, type=kind, nullable=nullable))
    return out


def _kind(json_type: str | None, fmt: Any) -> ColumnType:
    if json_type == "string":
        if fmt == "date-time":
            return "timestamp"
        if fmt == "date":
            return "date"
        return "string"
    if json_type == "integer":
        return "int64"
    if json_type == "number":
        return "float64"
    if json_type == "boolean":
        return "boolean"
    return "json"
