"""A small TOML writer for connector configs written by tests (the standard library reads TOML, it
does not write it).

``to_toml(document)`` supports what connector configs use: strings (and paths), integers, floats,
booleans, lists of those, nested tables and arrays of tables. Anything else raises TypeError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["to_toml"]


def to_toml(document: dict[str, Any]) -> str:
    """``document`` as TOML text; TypeError for a value without a TOML form (None, a set ...)."""
    out: list[str] = []
    _table("", document, out)
    return "\n".join(out) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _table(prefix: str, table: dict[str, Any], out: list[str]) -> None:
    """Scalars of ``table`` first, then its sub-tables and arrays of tables (TOML needs that order)."""
    nested = {k: v for k, v in table.items() if isinstance(v, dict) or _is_table_array(v)}
    for key, value in table.items():
        if key not in nested:
            out.append(f"{key} = {_value(value)}")
    for key, value in nested.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.append(f"\n[{name}]")
            _table(name, value, out)
        else:
            for item in value:
                out.append(f"\n[[{name}]]")
                _table(name, item, out)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
