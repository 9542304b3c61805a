"""Write connector configuration files from dicts: the one TOML writer of the tests.

Python reads TOML (``tomllib``) but does not write it, and a test that builds its config as a dict can
override one key without string surgery. The writer covers what TOML can hold: strings, paths (as
strings), booleans, integers, floats (``nan`` and ``inf`` included), dates and times, arrays, tables and
arrays of tables. Keys that are not bare (``A-Za-z0-9_-``) are quoted, so any key survives the round
trip, and a dict inside an array that also holds other values becomes an inline table.

Failure semantics: a value with no TOML form (None, a set, an object) raises TypeError naming it;
nothing is written half-way by :func:`write_toml` because the text is built before the file is opened.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["connector_document", "to_toml", "toml_value", "write_connector_toml", "write_toml"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


def _string(text: str) -> str:
    # JSON's escapes are TOML basic-string escapes; DEL must be escaped in TOML as well.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def toml_value(value: Any) -> str:
    """The inline TOML form of ``value`` (tables become inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str | Path):
        return _string(str(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {value!r}")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _table(prefix: str, table: Mapping[str, Any], out: list[str]) -> None:
    """Plain values of ``table`` first, then its sub-tables and arrays of tables (TOML needs that order)."""
    nested = {k: v for k, v in table.items() if isinstance(v, Mapping) or _is_table_array(v)}
    for key, value in table.items():
        if key not in nested:
            out.append(f"{_key(key)} = {toml_value(value)}")
    for key, value in nested.items():
        name = f"{prefix}.{_key(key)}" if prefix else _key(key)
        if isinstance(value, Mapping):
            out.append(f"\n[{name}]")
            _table(name, value, out)
        else:
            for item in value:
                out.append(f"\n[[{name}]]")
                _table(name, item, out)


def to_toml(document: Mapping[str, Any]) -> str:
    """``document`` as a TOML text that ``tomllib.loads`` reads back equal (paths and tuples aside)."""
    out: list[str] = []
    _table("", document, out)
    return "\n".join(out) + "\n"


def write_toml(path: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` to ``path`` (parents created) and return ``path``."""
    text = to_toml(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def connector_document(
    broker_url: str,
    connector_name: str,
    *,
    retry: Mapping[str, Any] | None = None,
    processing: Mapping[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """A connector configuration as a dict: the broker URL, the name, ``[retry]`` when given,
    ``[processing]`` with ``metrics_port = 0`` (a free port) unless overridden, then ``sections`` in
    order (``surrealdb={...}``, ``mqtt={...}``; a key with a dash goes through ``**{"a-b": ...}``)."""
    document: dict[str, Any] = {"danube_service_url": broker_url, "connector_name": connector_name}
    if retry is not None:
        document["retry"] = dict(retry)
    document["processing"] = {"metrics_port": 0, **(processing or {})}
    document.update(sections)
    return document


def write_connector_toml(
    path: Path,
    broker_url: str,
    connector_name: str,
    *,
    retry: Mapping[str, Any] | None = None,
    processing: Mapping[str, Any] | None = None,
    **sections: Any,
) -> Path:
    """Write :func:`connector_document` to ``path`` and return ``path``."""
    document = connector_document(broker_url, connector_name, retry=retry, processing=processing, **sections)
    return write_toml(path, document)
