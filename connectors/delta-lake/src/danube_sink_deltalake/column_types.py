"""Column types: their Arrow types and the conversion of one JSON value into a column value.

A conversion that cannot be made raises ``ValueError`` with a short reason; the caller turns it into
InvalidData for that record (invariant 4/5: bad input is dead-lettered, never crashes the sink).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
from danube_connect_core import exact_json

from danube_sink_deltalake.settings import ColumnType

__all__ = ["arrow_type", "converter"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1
#: datetime's range (years 1-9999) in microseconds around the epoch.
_MAX_MICROS = 253_402_300_800 * 1_000_000

_ARROW: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "json": pa.string(),
    "binary": pa.binary(),
}


def arrow_type(kind: ColumnType) -> pa.DataType:
    return _ARROW[kind]


def _string(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool | int | float):
        return _json_text(v)
    raise ValueError(f"expected a string, got {_kind(v)}")


def _int(bits: int) -> Callable[[Any], int]:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def conv(v: Any) -> int:
        if type(v) is int and lo <= v <= hi:
            return v
        if isinstance(v, bool):
            raise ValueError("expected an integer, got a boolean")
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, str):
            try:
                v = int(v.strip())
            except ValueError:
                raise ValueError(f"expected an integer, got the string {v[:40]!r}") from None
        if not isinstance(v, int):
            raise ValueError(f"expected an integer, got {_kind(v)}")
        if not lo <= v <= hi:
            raise ValueError(f"integer {_digits(v)} out of range for int{bits}")
        return v

    return conv


def _float(v: Any) -> float:
    if type(v) is float:
        return v
    if isinstance(v, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(v, int) and not _INT64_MIN <= v <= _UINT64_MAX:
        # a float would round it (or overflow): refuse rather than store another number (invariant 4)
        raise ValueError(f"integer {_digits(v)} is beyond 64 bits; a float column would round it")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise ValueError(f"expected a number, got the string {v[:40]!r}") from None
    raise ValueError(f"expected a number, got {_kind(v)}")


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise ValueError(f"expected a boolean, got {_kind(v)}")


def _timestamp(v: Any) -> int:
    """Microseconds since the epoch (UTC) from ISO 8601 text (naive means UTC) or epoch
    seconds/milliseconds/microseconds told apart by magnitude."""
    if isinstance(v, bool):
        raise ValueError("expected a timestamp, got a boolean")
    if isinstance(v, int | float):
        a = abs(v)
        micros = v * 1_000_000 if a < 1e11 else v * 1_000 if a < 1e14 else v
        if not -_MAX_MICROS <= micros <= _MAX_MICROS:
            raise ValueError(f"timestamp {v} out of range")
        return int(micros)
    if isinstance(v, str):
        try:
            t = dt.datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith("Z") else v)
        except ValueError:
            raise ValueError(f"expected an ISO 8601 timestamp, got {v[:40]!r}") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        delta = t - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise ValueError(f"expected a timestamp, got {_kind(v)}")


def _date(v: Any) -> dt.date:
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v[:10])
        except ValueError:
            raise ValueError(f"expected an ISO 8601 date, got {v[:40]!r}") from None
    raise ValueError(f"expected a date string, got {_kind(v)}")


def _json(v: Any) -> str:
    return _json_text(v)


def _binary(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    raise ValueError(f"expected bytes or a string, got {_kind(v)}")


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": _string,
    "int64": _int(64),
    "int32": _int(32),
    "float64": _float,
    "float32": _float,
    "boolean": _bool,
    "timestamp": _timestamp,
    "date": _date,
    "json": _json,
    "binary": _binary,
}


def converter(kind: ColumnType) -> Callable[[Any], Any]:
    """The function turning a (non-null) JSON value into the column's Python value, or raising ValueError."""
    return _CONVERTERS[kind]


def _json_text(v: Any) -> str:
    """JSON text with integers of any size exact; ValueError for values JSON cannot hold."""
    try:
        return exact_json.dumps(v).decode()
    except TypeError as exc:
        raise ValueError(f"value cannot be written as JSON: {exc}") from None


def _digits(v: int) -> str:
    text = str(v)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "an array"
    return type(v).__name__
