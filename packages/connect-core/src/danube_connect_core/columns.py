"""JSON values -> typed table columns, shared by the column-store sinks (Delta Lake, ClickHouse).

Two layers:

- **Per-value converters** (:func:`integer`, :func:`floating`, :func:`timestamp_micros`, ...): one non-null
  JSON value -> the column's Python value, or ``ValueError`` with a short reason. They are the rules.
- **Batch columns** (:func:`build_columns`): the decoded payloads of a whole batch -> one Arrow array per
  column. Per column, the values are taken out of the payloads in C (``map``, no Python code per record).
  For integer, string, boolean and epoch-timestamp columns pyarrow infers the values' type in the same
  call that converts them, and the array is taken when that type is the column's JSON type (int64 only
  when every value is an ``int``, string only for ``str``, bool only for ``bool``); for the other columns,
  or when the inferred type is another, the values' Python types are looked at (``set(map(type, ...))``)
  and, when they all have the column's JSON type, pyarrow converts the whole column in one call,
  otherwise (or when pyarrow refuses, e.g. an integer out of range) that column of that batch goes
  through the per-value converter. The fast paths are only taken for type combinations where pyarrow's
  conversion gives exactly the converter's value, so all paths store the same thing.

Failure semantics: a value that cannot go into its column (wrong type, out of range, missing or null in a
non-nullable column) never raises out of :func:`build_columns`; the record is reported in
``BatchColumns.rejected`` with the reason of its first such column, and the caller rejects it (invariant 5:
bad input is dead-lettered, the rest of the batch is written).

Needs pyarrow: a dependency of the sinks that use this module, not of connect-core itself.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from danube_connect_core import exact_json
from danube_connect_core.records import SinkRecord

__all__ = [
    "MISSING",
    "BatchColumns",
    "Column",
    "Converter",
    "Fast",
    "RecordFields",
    "binary",
    "boolean",
    "build_columns",
    "date",
    "decimal_value",
    "dedup_token",
    "describe",
    "digits",
    "floating",
    "integer",
    "json_text",
    "record_fields",
    "record_positions",
    "string",
    "timestamp_micros",
    "uuid_value",
]

Converter = Callable[[Any], Any]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: A field the payload does not have (distinct from a JSON null).
MISSING: Any = _Missing()

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1
#: datetime's range (years 1-9999) in microseconds around the epoch.
_MAX_MICROS = 253_402_300_800 * 1_000_000


# -- per-value converters ----------------------------------------------------------------------------


def string(*, containers: bool) -> Converter:
    """Text as is; numbers and booleans as their JSON text. Objects and arrays become JSON text when
    ``containers`` (ClickHouse String), else they are refused (Delta string columns)."""

    def scalar(v: Any) -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, bool | int | float):
            return json_text(v)
        raise ValueError(f"expected a string, got {describe(v)}")

    def anything(v: Any) -> str:
        if isinstance(v, str):
            return v
        if v is None:
            raise ValueError("null for a non-nullable column")
        return json_text(v)

    return anything if containers else scalar


def integer(lo: int, hi: int, *, bools: bool, type_name: str | None = None) -> Converter:
    """An integer in [lo, hi]; integral floats and numeric strings are taken, booleans only when
    ``bools`` (as 0/1). The range error names ``type_name`` when given, else the bounds."""

    def conv(v: Any) -> int:
        if type(v) is int and lo <= v <= hi:
            return v
        if isinstance(v, bool):
            if bools:
                return int(v)
            raise ValueError("expected an integer, got a boolean")
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        elif isinstance(v, str):
            try:
                v = int(v.strip())
            except ValueError:
                raise ValueError(f"expected an integer, got the string {v[:40]!r}") from None
        if not isinstance(v, int):
            raise ValueError(f"expected an integer, got {describe(v)}")
        if not lo <= v <= hi:
            where = f"for {type_name}" if type_name else f"[{lo}, {hi}]"
            raise ValueError(f"integer {digits(v)} out of range {where}")
        return v

    return conv


def floating(v: Any) -> float:
    """A float from a number or numeric text; booleans and integers beyond 64 bits are refused."""
    if type(v) is float:
        return v
    if isinstance(v, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(v, int) and not _INT64_MIN <= v <= _UINT64_MAX:
        # a float would round it (or overflow): refuse rather than store another number (invariant 4)
        raise ValueError(f"integer {digits(v)} is beyond 64 bits; a float column would round it")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise ValueError(f"expected a number, got the string {v[:40]!r}") from None
    raise ValueError(f"expected a number, got {describe(v)}")


def boolean(*, numbers: bool) -> Converter:
    """true/false (also as text); 0 and 1 too when ``numbers``."""

    def conv(v: Any) -> bool:
        if isinstance(v, bool):
            return v
        if numbers and v in (0, 1):
            return bool(v)
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise ValueError(f"expected a boolean, got {describe(v)}")

    return conv


def timestamp_micros(v: Any) -> int:
    """Microseconds since the epoch (UTC) from ISO 8601 text (naive means UTC), a datetime, or epoch
    seconds/milliseconds/microseconds told apart by magnitude (< 1e11 seconds, < 1e14 milliseconds)."""
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
        return _datetime_micros(t)
    if isinstance(v, dt.datetime):  # Avro timestamp logical types decode to datetime
        return _datetime_micros(v)
    raise ValueError(f"expected a timestamp, got {describe(v)}")


def _datetime_micros(t: dt.datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def date(v: Any) -> dt.date:
    """A date from ISO 8601 text (a timestamp's date part is taken)."""
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v[:10])
        except ValueError:
            raise ValueError(f"expected an ISO 8601 date, got {v[:40]!r}") from None
    raise ValueError(f"expected a date string, got {describe(v)}")


def json_text(v: Any) -> str:
    """JSON text with integers of any size exact; ValueError for values JSON cannot hold."""
    try:
        return exact_json.dumps(v).decode()
    except TypeError as exc:
        raise ValueError(f"value cannot be written as JSON: {exc}") from None


def binary(v: Any) -> bytes:
    """Bytes as is, text as UTF-8."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    raise ValueError(f"expected bytes or a string, got {describe(v)}")


def decimal_value(v: Any) -> decimal.Decimal:
    """An exact decimal from a number or numeric text (a float through its shortest repr)."""
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ValueError(f"expected a decimal number, got {describe(v)}")
    try:
        return decimal.Decimal(str(v))
    except decimal.InvalidOperation:
        raise ValueError(f"expected a decimal number, got {str(v)[:40]!r}") from None


def uuid_value(v: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(v))
    except ValueError:
        raise ValueError(f"expected a UUID, got {str(v)[:40]!r}") from None


def digits(v: int) -> str:
    """An integer for a reason: whole when short, else its start and its number of digits."""
    text = str(v)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"


def describe(v: Any) -> str:
    """What kind of JSON value ``v`` is, for a reason."""
    if v is None:
        return "null"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "an array"
    return type(v).__name__


# -- batch columns -----------------------------------------------------------------------------------


class Fast(enum.Enum):
    """Which values of a column pyarrow may convert in one call (giving the converter's result)."""

    NONE = "none"  # always the per-value converter
    INT = "int"  # all int (not bool): pa.array with the integer type (refuses out of range)
    FLOAT = "float"  # int or float: pa.array with the float type (refuses ints it cannot hold exactly)
    BOOL = "bool"  # all bool
    STRING = "string"  # all str
    TIMESTAMP = "timestamp"  # all int: epoch seconds/ms/us by magnitude, computed on the array
    JSON = "json"  # anything orjson writes: JSON text
    BINARY = "binary"  # all str (UTF-8) or all bytes


_NONE_TYPES = frozenset({type(None), _Missing})
_FAST_TYPES: dict[Fast, frozenset[type]] = {
    Fast.INT: frozenset({int}),
    Fast.FLOAT: frozenset({int, float}),
    Fast.BOOL: frozenset({bool}),
    Fast.STRING: frozenset({str}),
    Fast.TIMESTAMP: frozenset({int}),
    Fast.BINARY: frozenset({str}),
}
#: What pyarrow may raise when a column does not convert as a whole (the per-value path then decides).
_ARROW_REFUSALS = (pa.ArrowException, OverflowError, TypeError, ValueError, UnicodeError)


@dataclass(frozen=True)
class Column:
    """One target column filled from each payload.

    ``key`` names a top-level field (the fast case); otherwise ``get`` takes the value out of a payload
    (returning :data:`MISSING` when absent), or, with neither, the whole payload is the value.
    ``convert`` turns a non-null value into what ``pa.array(..., value_type)`` takes (``value_type``
    defaults to ``arrow_type``; the array is then cast to ``arrow_type``, e.g. int64 micros -> timestamp).
    Reasons: ``missing_reason`` gets "missing" or "null"; a conversion error reads
    ``f"{error_prefix}: {message}"``.
    """

    name: str
    arrow_type: pa.DataType
    nullable: bool
    convert: Converter
    fast: Fast
    missing_reason: Callable[[str], str]
    error_prefix: str
    key: str | None = None
    get: Callable[[Any], Any] | None = None
    value_type: pa.DataType | None = None

    @property
    def storage_type(self) -> pa.DataType:
        return self.value_type if self.value_type is not None else self.arrow_type


@dataclass
class BatchColumns:
    """One array per column (every row of the batch, null where a row was rejected) and the rejected rows:
    row index -> reason of its first column that could not be filled."""

    arrays: list[pa.Array]
    rejected: dict[int, str] = field(default_factory=dict)

    def keep_mask(self, n: int) -> list[bool] | None:
        """Row mask of the rows to write, or None when every row is kept."""
        if not self.rejected:
            return None
        mask = [True] * n
        for i in self.rejected:
            mask[i] = False
        return mask


def build_columns(columns: Sequence[Column], payloads: Sequence[Any]) -> BatchColumns:
    """The batch's columns (see the module docstring). A payload that is not a JSON object has none of
    the keyed fields (MISSING); rejecting such payloads outright is the caller's choice."""
    objects: Sequence[Any] = payloads
    if set(map(type, payloads)) != {dict}:
        objects = [p if type(p) is dict else {} for p in payloads]
    out = BatchColumns([])
    for column in columns:
        if column.key is not None:
            # missing and null are the same null in a nullable column; only a reason tells them apart
            absent = None if column.nullable else MISSING
            values = list(map(dict.get, objects, repeat(column.key), repeat(absent)))
        elif column.get is not None:
            values = list(map(column.get, payloads))
        else:
            values = list(payloads)
        out.arrays.append(_column(column, values, out.rejected))
    return out


def _column(column: Column, values: list[Any], rejected: dict[int, str]) -> pa.Array:
    array = _inferred(column, values, rejected)
    if array is not None:
        return array
    types = set(map(type, values))
    nulls = not types.isdisjoint(_NONE_TYPES)
    if column.fast is not Fast.NONE and (column.nullable or not nulls):
        try:
            array = _fast(column, values, types - _NONE_TYPES, nulls, rejected)
        except _ARROW_REFUSALS:
            array = None
        if array is not None:
            return array
    return _slow(column, values, rejected)


#: Fast kinds whose value types pyarrow's own type inference tells apart exactly: it infers int64 only
#: when every value is an int (a bool among ints is refused), string only when every value is a str (str
#: and bytes give binary), bool only when every value is a bool (nulls aside in each case).
_NULL = pa.null()
_INFERRED: dict[Fast, pa.DataType] = {
    Fast.INT: pa.int64(),
    Fast.TIMESTAMP: pa.int64(),
    Fast.STRING: pa.string(),
    Fast.BOOL: pa.bool_(),
}


def _inferred(column: Column, values: list[Any], rejected: dict[int, str]) -> pa.Array | None:
    """The usual batch in one pyarrow call without a Python pass over the value types: pyarrow infers
    the array's type and it is the fast kind's (or all null), with no null where none is allowed. None
    (nothing rejected) otherwise: :func:`_fast`/:func:`_slow` decide as for any batch."""
    kind = _INFERRED.get(column.fast)
    if kind is None:
        return None
    try:
        array = pa.array(values)  # MISSING (non-nullable column), > 64-bit ints...: refused here
        if array.null_count and not column.nullable:
            return None
        if array.type == _NULL:
            array = array.cast(kind)
        elif array.type != kind:
            return None
        if column.fast is Fast.TIMESTAMP:
            return _epoch_micros(column, values, rejected, array)
        if array.type != column.storage_type:
            array = array.cast(column.storage_type)  # int64 -> a narrower integer: refuses out of range
    except _ARROW_REFUSALS:
        return None
    return array if column.value_type is None else array.cast(column.arrow_type, safe=False)


def _fast(
    column: Column, values: list[Any], types: set[type], nulls: bool, rejected: dict[int, str]
) -> pa.Array | None:
    """The column in one pyarrow call, or None when its value types need the per-value converter."""
    if nulls and MISSING in values:  # nullable column: a missing field is a null
        values = [None if v is MISSING else v for v in values]
    fast = column.fast
    if fast is Fast.JSON:
        if nulls:
            return None
        return pa.array(list(map(orjson.dumps, values)), pa.string()).cast(column.arrow_type)
    if fast is Fast.BINARY and types == {bytes}:
        return pa.array(values, pa.binary()).cast(column.arrow_type)
    if not types <= _FAST_TYPES[fast]:
        return None
    if fast is Fast.TIMESTAMP:
        return _epoch_micros(column, values, rejected)
    if fast is Fast.BINARY:
        return pa.array(values, pa.string()).cast(column.arrow_type)
    array = pa.array(values, column.storage_type)
    return array if column.value_type is None else array.cast(column.arrow_type, safe=False)


def _epoch_micros(
    column: Column, values: list[Any], rejected: dict[int, str], v: pa.Array | None = None
) -> pa.Array:
    """Epoch seconds/ms/us (by magnitude, as :func:`timestamp_micros`) -> the timestamp column; rows out
    of range are rejected with the converter's reason. ``v``: ``values`` as an int64 array already."""
    if v is None:
        v = pa.array(values, pa.int64())  # beyond 64 bits: OverflowError -> per value
    lo, hi = pc.min_max(v).values()
    lo, hi = lo.as_py(), hi.as_py()
    if lo is not None and lo > -100_000_000_000 and hi < 100_000_000_000:
        # all seconds (the usual batch): one multiply, never out of range (|v| * 1e6 < _MAX_MICROS)
        return _cast_micros(pc.multiply(v, 1_000_000), column.arrow_type)
    magnitude = pc.abs_checked(v)
    micros = pc.if_else(
        pc.less(magnitude, 100_000_000_000),
        pc.multiply(v, 1_000_000),  # wraps where not selected (>= 1e11): those rows take another branch
        pc.if_else(pc.less(magnitude, 100_000_000_000_000), pc.multiply(v, 1_000), v),
    )
    out_of_range = pc.greater(pc.abs_checked(micros), _MAX_MICROS)
    if pc.any(out_of_range).as_py():
        for i in pc.indices_nonzero(pc.fill_null(out_of_range, False)).to_pylist():
            _reject_value(column, values[i], i, rejected)
        micros = pc.if_else(out_of_range, None, micros)
    return _cast_micros(micros, column.arrow_type)


def _cast_micros(micros: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    tz = getattr(arrow_type, "tz", None)
    stamps = micros.cast(pa.timestamp("us", tz=tz))
    return stamps if stamps.type == arrow_type else stamps.cast(arrow_type, safe=False)


def _reject_value(column: Column, value: Any, i: int, rejected: dict[int, str]) -> None:
    try:
        column.convert(value)
        reason = f"{column.error_prefix}: value cannot be stored"
    except ValueError as exc:
        reason = f"{column.error_prefix}: {exc}"
    rejected.setdefault(i, reason)


def _slow(column: Column, values: list[Any], rejected: dict[int, str]) -> pa.Array:
    """The column value by value through the converter; rows that do not convert are rejected."""
    out: list[Any] = []
    convert = column.convert
    for i, v in enumerate(values):
        if v is None or v is MISSING:
            if not column.nullable:
                rejected.setdefault(i, column.missing_reason("missing" if v is MISSING else "null"))
            out.append(None)
            continue
        try:
            out.append(convert(v))
        except ValueError as exc:
            rejected.setdefault(i, f"{column.error_prefix}: {exc}")
            out.append(None)
    try:
        return _array(column, out)
    except _ARROW_REFUSALS:
        pass
    # A converted value pyarrow still refuses (e.g. text with a lone surrogate): find it, reject its row.
    for i, v in enumerate(out):
        try:
            _array(column, [v])
        except _ARROW_REFUSALS as exc:
            rejected.setdefault(i, f"{column.error_prefix}: value cannot be stored: {str(exc)[:200]}")
            out[i] = None
    return _array(column, out)


def _array(column: Column, values: list[Any]) -> pa.Array:
    if column.fast is Fast.TIMESTAMP:
        return _cast_micros(pa.array(values, pa.int64()), column.arrow_type)
    array = pa.array(values, column.storage_type)
    return array if column.value_type is None else array.cast(column.arrow_type, safe=False)


# -- the records' own fields ---------------------------------------------------------------------------


@dataclass
class RecordFields:
    """The message fields of a batch's records as arrays (for metadata columns, positions, tokens).

    ``partitions`` and ``keys`` hold nulls where the record has none; ``publish_micros`` is
    ``SinkRecord.publish_time`` (microseconds since the epoch); ``attributes`` is the attributes as JSON
    text; ``message_ids`` equals ``SinkRecord.message_id`` per record.
    """

    topics: pa.Array
    partitions: pa.Array
    offsets: pa.Array
    publish_micros: pa.Array
    keys: pa.Array
    attributes: pa.Array
    message_ids: pa.Array


_TOPIC, _PARTITION, _OFFSET = attrgetter("topic"), attrgetter("partition"), attrgetter("offset")
_PUBLISH, _KEY, _ATTRIBUTES = attrgetter("publish_time"), attrgetter("key"), attrgetter("attributes")


def record_fields(records: Sequence[SinkRecord]) -> RecordFields:
    """The fields of ``records`` (see :class:`RecordFields`), taken out in C, not per record in Python.

    The common batch (one topic, no attributes) takes no per-record conversion at all for those two
    columns: each is one repeated value.
    """
    n = len(records)
    topic = list(map(_TOPIC, records))
    if n and topic.count(topic[0]) == n:
        topics = pa.repeat(pa.scalar(topic[0], pa.string()), n)
    else:
        topics = pa.array(topic, pa.string())
    partitions, offsets = record_positions(records)
    attrs = list(map(_ATTRIBUTES, records))
    if not any(attrs):  # every mapping empty
        attributes = pa.repeat(pa.scalar("{}", pa.string()), n)
    elif set(map(type, attrs)) <= {dict}:
        attributes = pa.array(list(map(orjson.dumps, attrs)), pa.string())
    else:
        attributes = pa.array([orjson.dumps(dict(a)) for a in attrs], pa.string())
    # message_id is "topic[:partition]:offset" for offsets > 0; offset 0 names the producer (per record)
    ids = pc.binary_join_element_wise(
        topics, partitions.cast(pa.string()), offsets.cast(pa.string()), ":", null_handling="skip"
    )
    zero = pc.equal(offsets, 0)
    if n and pc.any(zero).as_py():
        named = [records[i].message_id for i in pc.indices_nonzero(zero).to_pylist()]
        ids = pc.replace_with_mask(ids, zero, pa.array(named, pa.string()))
    return RecordFields(
        topics=topics,
        partitions=partitions,
        offsets=offsets,
        publish_micros=pa.array(list(map(_PUBLISH, records)), pa.int64()),
        keys=pa.array(list(map(_KEY, records)), pa.string()),
        attributes=attributes,
        message_ids=ids,
    )


def record_positions(records: Sequence[SinkRecord]) -> tuple[pa.Array, pa.Array]:
    """Just the (partitions, offsets) of :func:`record_fields`, for a table without metadata columns."""
    return (
        pa.array(list(map(_PARTITION, records)), pa.int32()),
        pa.array(list(map(_OFFSET, records)), pa.int64()),
    )


def dedup_token(message_ids: pa.Array) -> str:
    """``danube-`` + the first 40 hex digits of SHA-256 over each message id followed by a newline (the
    same token as hashing the ids one by one: a replay written before and after this code agree)."""
    lines = pc.binary_join_element_wise(message_ids, "", "\n")
    h = hashlib.sha256()
    if len(lines):
        offsets = lines.buffers()[1]
        data = lines.buffers()[2]
        start, end = (
            int.from_bytes(offsets[i * 4 : i * 4 + 4], "little", signed=True)
            for i in (lines.offset, lines.offset + len(lines))
        )
        h.update(memoryview(data)[start:end])
    return f"danube-{h.hexdigest()[:40]}"
