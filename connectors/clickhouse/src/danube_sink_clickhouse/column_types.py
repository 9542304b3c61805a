"""ClickHouse column types -> converters from JSON values to what clickhouse-connect serialises.

A converter raises ``ValueError`` with a short reason when a value cannot go into the column; the record
is then dead-lettered (invariant 5). Types not listed here pass values through unchanged and rely on the
client/server to refuse them (the writer then isolates the bad rows by bisection).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Callable
from typing import Any

from danube_connect_core import exact_json

__all__ = ["Converter", "converter_for", "is_nullable"]

Converter = Callable[[Any], Any]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1
_INT = re.compile(r"^(U?)Int(8|16|32|64|128|256)$")
_WRAPPED = re.compile(r"^(\w+)\((.*)\)$", re.S)


def is_nullable(ch_type: str) -> bool:
    t = _strip_low_cardinality(ch_type)
    return t.startswith("Nullable(")


def converter_for(ch_type: str) -> Converter:
    t = _strip_low_cardinality(ch_type.strip())
    m = _WRAPPED.match(t)
    if m and m.group(1) == "Nullable":
        inner = converter_for(m.group(2))
        return lambda v: None if v is None else inner(v)
    m_int = _INT.match(t)
    if m_int:
        unsigned, bits = m_int.group(1) == "U", int(m_int.group(2))
        return _int(
            0 if unsigned else -(1 << (bits - 1)), (1 << bits) - 1 if unsigned else (1 << (bits - 1)) - 1
        )
    if t in ("Float32", "Float64", "BFloat16"):
        return _float
    if t == "Bool":
        return _bool
    if t == "String" or t.startswith("FixedString("):
        return _string
    if t == "UUID":
        return _uuid
    if t in ("Date", "Date32"):
        return _date
    if t == "DateTime" or t.startswith(("DateTime(", "DateTime64(")):
        return _datetime
    if (m and m.group(1) == "Decimal") or t.startswith("Decimal"):
        return _decimal
    if m and m.group(1) == "Array":
        inner = converter_for(m.group(2))
        return lambda v: _array(v, inner)
    return _not_null


def _strip_low_cardinality(t: str) -> str:
    while t.startswith("LowCardinality(") and t.endswith(")"):
        t = t[len("LowCardinality(") : -1]
    return t


def _not_null(v: Any) -> Any:
    if v is None:
        raise ValueError("null for a non-nullable column")
    return v


def _int(lo: int, hi: int) -> Converter:
    def conv(v: Any) -> int:
        if type(v) is int and lo <= v <= hi:
            return v
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        elif isinstance(v, str):
            try:
                v = int(v.strip())
            except ValueError:
                raise ValueError(f"expected an integer, got the string {v[:40]!r}") from None
        if not isinstance(v, int):
            raise ValueError(f"expected an integer, got {_kind(v)}")
        if not lo <= v <= hi:
            raise ValueError(f"integer {_digits(v)} out of range [{lo}, {hi}]")
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
    if v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise ValueError(f"expected a boolean, got {_kind(v)}")


def _string(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is None:
        raise ValueError("null for a non-nullable column")
    return _json_text(v)  # numbers, objects and arrays as JSON text


def _uuid(v: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(v))
    except ValueError:
        raise ValueError(f"expected a UUID, got {str(v)[:40]!r}") from None


def _date(v: Any) -> dt.date:
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v[:10])
        except ValueError:
            raise ValueError(f"expected an ISO 8601 date, got {v[:40]!r}") from None
    raise ValueError(f"expected a date string, got {_kind(v)}")


def _datetime(v: Any) -> dt.datetime:
    """ISO 8601 text (naive means UTC) or epoch seconds/milliseconds/microseconds by magnitude."""
    if isinstance(v, dt.datetime):
        return v
    if isinstance(v, bool):
        raise ValueError("expected a timestamp, got a boolean")
    if isinstance(v, int | float):
        a = abs(v)
        seconds = v if a < 1e11 else v / 1e3 if a < 1e14 else v / 1e6
        try:
            return dt.datetime.fromtimestamp(seconds, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"timestamp {v} out of range") from None
    if isinstance(v, str):
        try:
            t = dt.datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith("Z") else v)
        except ValueError:
            raise ValueError(f"expected an ISO 8601 timestamp, got {v[:40]!r}") from None
        return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)
    raise ValueError(f"expected a timestamp, got {_kind(v)}")


def _decimal(v: Any) -> decimal.Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ValueError(f"expected a decimal number, got {_kind(v)}")
    try:
        return decimal.Decimal(str(v))
    except decimal.InvalidOperation:
        raise ValueError(f"expected a decimal number, got {str(v)[:40]!r}") from None


def _array(v: Any, inner: Converter) -> list[Any]:
    if not isinstance(v, list):
        raise ValueError(f"expected an array, got {_kind(v)}")
    return [inner(x) for x in v]


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
