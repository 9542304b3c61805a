"""ClickHouse column types -> how JSON values become column values.

The conversion rules are connect-core's (:mod:`danube_connect_core.columns`, shared with the Delta Lake
sink); this module reads ClickHouse type names and picks the rule. Two forms:

- :func:`converter_for`: one value -> what clickhouse-connect serialises (the row insert, used for tables
  with a column type that has no Arrow form here);
- :func:`arrow_form`: the column's Arrow type, converter and batch conversion (the Arrow insert), or None
  for types kept on the row insert (Int128/256, Decimal, UUID, FixedString, Enum, Map, Tuple, ...).

A converter raises ``ValueError`` with a short reason when a value cannot go into the column; the record
is then dead-lettered (invariant 5). Types not listed pass values through unchanged and rely on the
client/server to refuse them (the writer then isolates the bad rows by bisection).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
from danube_connect_core import columns as col

__all__ = ["ArrowForm", "Converter", "arrow_form", "converter_for", "is_nullable"]

Converter = Callable[[Any], Any]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INT = re.compile(r"^(U?)Int(8|16|32|64|128|256)$")
_WRAPPED = re.compile(r"^(\w+)\((.*)\)$", re.S)
_DATETIME64 = re.compile(r"^DateTime64\(\s*(\d)\s*(?:,\s*'([^']*)'\s*)?\)$")
_DATETIME = re.compile(r"^DateTime(?:\(\s*'([^']*)'\s*\))?$")
_ARROW_INT = {
    (False, 8): pa.int8(),
    (False, 16): pa.int16(),
    (False, 32): pa.int32(),
    (False, 64): pa.int64(),
    (True, 8): pa.uint8(),
    (True, 16): pa.uint16(),
    (True, 32): pa.uint32(),
    (True, 64): pa.uint64(),
}
#: ClickHouse's own ranges for Date (days since 1970, UInt16), Date32 and DateTime (seconds, UInt32).
_DATE_RANGE = (dt.date(1970, 1, 1), dt.date(2149, 6, 6))
_DATE32_RANGE = (dt.date(1900, 1, 1), dt.date(2299, 12, 31))
_DATETIME_MAX_MICROS = ((1 << 32) - 1) * 1_000_000


def is_nullable(ch_type: str) -> bool:
    t = _strip_low_cardinality(ch_type)
    return t.startswith("Nullable(")


def _strip_low_cardinality(t: str) -> str:
    while t.startswith("LowCardinality(") and t.endswith(")"):
        t = t[len("LowCardinality(") : -1]
    return t


def _int_bounds(unsigned: bool, bits: int) -> tuple[int, int]:
    return (0, (1 << bits) - 1) if unsigned else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


_FLOAT = col.floating
_BOOL = col.boolean(numbers=True)
_STRING = col.string(containers=True)


def converter_for(ch_type: str) -> Converter:
    """One JSON value -> the value clickhouse-connect serialises for ``ch_type`` (row insert)."""
    t = _strip_low_cardinality(ch_type.strip())
    m = _WRAPPED.match(t)
    if m and m.group(1) == "Nullable":
        inner = converter_for(m.group(2))
        return lambda v: None if v is None else inner(v)
    m_int = _INT.match(t)
    if m_int:
        return col.integer(*_int_bounds(m_int.group(1) == "U", int(m_int.group(2))), bools=True)
    if t in ("Float32", "Float64", "BFloat16"):
        return _FLOAT
    if t == "Bool":
        return _BOOL
    if t == "String" or t.startswith("FixedString("):
        return _STRING
    if t == "UUID":
        return col.uuid_value
    if t in ("Date", "Date32"):
        return col.date
    if t == "DateTime" or t.startswith(("DateTime(", "DateTime64(")):
        return _datetime
    if (m and m.group(1) == "Decimal") or t.startswith("Decimal"):
        return col.decimal_value
    if m and m.group(1) == "Array":
        inner = converter_for(m.group(2))
        return lambda v: _array(v, inner)
    return _not_null


def _datetime(v: Any) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=col.timestamp_micros(v))


def _not_null(v: Any) -> Any:
    if v is None:
        raise ValueError("null for a non-nullable column")
    return v


def _array(v: Any, inner: Converter) -> list[Any]:
    if not isinstance(v, list):
        raise ValueError(f"expected an array, got {col.describe(v)}")
    return [inner(x) for x in v]


def _nullable(convert: Converter) -> Converter:
    return lambda v: None if v is None else convert(v)


def _in_range(convert: Converter, lo: Any, hi: Any, what: str) -> Converter:
    def conv(v: Any) -> Any:
        out = convert(v)
        if not lo <= out <= hi:
            raise ValueError(f"{what} {str(v)[:40]} out of range for the column")
        return out

    return conv


@dataclass(frozen=True)
class ArrowForm:
    """How one ClickHouse column is filled in an Arrow insert."""

    arrow_type: pa.DataType
    nullable: bool
    convert: Converter
    fast: col.Fast
    #: The Arrow type of the converter's values when it differs (then cast to ``arrow_type``).
    value_type: pa.DataType | None = None


def arrow_form(ch_type: str) -> ArrowForm | None:
    """The Arrow form of ``ch_type``, or None when the type stays on the row insert."""
    t = _strip_low_cardinality(ch_type.strip())
    nullable = False
    m = _WRAPPED.match(t)
    if m and m.group(1) == "Nullable":
        nullable, t = True, _strip_low_cardinality(m.group(2).strip())
        m = _WRAPPED.match(t)
    m_int = _INT.match(t)
    if m_int:
        unsigned, bits = m_int.group(1) == "U", int(m_int.group(2))
        if bits > 64:
            return None
        convert = col.integer(*_int_bounds(unsigned, bits), bools=True)
        return ArrowForm(_ARROW_INT[(unsigned, bits)], nullable, convert, col.Fast.INT)
    if t in ("Float32", "Float64"):
        return ArrowForm(pa.float32() if t == "Float32" else pa.float64(), nullable, _FLOAT, col.Fast.FLOAT)
    if t == "Bool":
        return ArrowForm(pa.bool_(), nullable, _BOOL, col.Fast.BOOL)
    if t == "String":
        return ArrowForm(pa.string(), nullable, _STRING, col.Fast.STRING)
    if t in ("Date", "Date32"):
        lo, hi = _DATE_RANGE if t == "Date" else _DATE32_RANGE
        return ArrowForm(pa.date32(), nullable, _in_range(col.date, lo, hi, "date"), col.Fast.NONE)
    m_dt64 = _DATETIME64.match(t)
    if m_dt64:
        precision, tz = int(m_dt64.group(1)), m_dt64.group(2) or "UTC"
        unit = "s" if precision == 0 else "ms" if precision <= 3 else "us" if precision <= 6 else None
        if unit is None:
            return None
        return ArrowForm(pa.timestamp(unit, tz=tz), nullable, col.timestamp_micros, col.Fast.TIMESTAMP)
    m_dt = _DATETIME.match(t)
    if m_dt:
        micros = _in_range(col.timestamp_micros, 0, _DATETIME_MAX_MICROS, "timestamp")
        return ArrowForm(
            pa.timestamp("s", tz=m_dt.group(1) or "UTC"),
            nullable,
            lambda v: micros(v) // 1_000_000,  # DateTime holds whole seconds (the row insert truncates too)
            col.Fast.NONE,
            value_type=pa.int64(),
        )
    if m and m.group(1) == "Array":
        inner = arrow_form(m.group(2))
        if inner is None or inner.fast is col.Fast.TIMESTAMP or inner.arrow_type == pa.date32():
            return None
        inner_convert = inner.convert
        if inner.nullable:
            inner_convert = _nullable(inner.convert)
        return ArrowForm(
            pa.list_(inner.arrow_type), nullable, lambda v: _array(v, inner_convert), col.Fast.NONE
        )
    return None
