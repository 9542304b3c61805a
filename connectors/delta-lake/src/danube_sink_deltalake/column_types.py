"""Delta column types: their Arrow types and how a JSON value becomes a column value.

The conversion rules are connect-core's (:mod:`danube_connect_core.columns`, shared with the ClickHouse
sink); this module only picks, per column type, the Arrow type, the converter and which values pyarrow may
convert for a whole batch at once. A conversion that cannot be made raises ``ValueError`` with a short
reason; the record is then rejected (invariant 4/5: bad input is dead-lettered, never crashes the sink).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
from danube_connect_core import columns as col

from danube_sink_deltalake.settings import ColumnType

__all__ = ["arrow_type", "converter", "fast_kind"]

_INT64 = (-(1 << 63), (1 << 63) - 1)
_INT32 = (-(1 << 31), (1 << 31) - 1)

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

_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": col.string(containers=False),
    "int64": col.integer(*_INT64, bools=False, type_name="int64"),
    "int32": col.integer(*_INT32, bools=False, type_name="int32"),
    "float64": col.floating,
    "float32": col.floating,
    "boolean": col.boolean(numbers=False),
    "timestamp": col.timestamp_micros,  # int microseconds: the batch path casts them to the timestamp
    "date": col.date,
    "json": col.json_text,
    "binary": col.binary,
}

_FAST: dict[str, col.Fast] = {
    "string": col.Fast.STRING,
    "int64": col.Fast.INT,
    "int32": col.Fast.INT,
    "float64": col.Fast.FLOAT,
    "float32": col.Fast.FLOAT,
    "boolean": col.Fast.BOOL,
    "timestamp": col.Fast.TIMESTAMP,
    "date": col.Fast.NONE,
    "json": col.Fast.JSON,
    "binary": col.Fast.BINARY,
}


def arrow_type(kind: ColumnType) -> pa.DataType:
    return _ARROW[kind]


def converter(kind: ColumnType) -> Callable[[Any], Any]:
    """The function turning a (non-null) JSON value into the column's Python value, or raising ValueError
    (a timestamp becomes microseconds since the epoch)."""
    return _CONVERTERS[kind]


def fast_kind(kind: ColumnType) -> col.Fast:
    """Which values of this column type pyarrow converts for a whole batch (see connect-core's columns)."""
    return _FAST[kind]
