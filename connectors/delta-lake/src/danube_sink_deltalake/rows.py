"""A batch of SinkRecords -> one Arrow table in the mapping's schema, plus the records that do not fit.

Every convertible record of the batch becomes a row (no truncation at any batch size); a record whose
payload cannot fill a column (wrong type, missing non-nullable value, not a JSON object) is reported with
its reason instead, so only it is dead-lettered (invariant 5).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
from danube_connect_core import SinkRecord

from danube_sink_deltalake.column_types import arrow_type, converter
from danube_sink_deltalake.json_path import MISSING, JsonPath
from danube_sink_deltalake.settings import ColumnMapping

__all__ = ["METADATA_FIELDS", "BuiltRows", "RowBuilder"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

#: Metadata columns added when a mapping sets ``include_metadata = true``.
METADATA_FIELDS: tuple[pa.Field, ...] = (
    pa.field("_danube_topic", pa.string(), nullable=False),
    pa.field("_danube_partition", pa.int32(), nullable=True),
    pa.field("_danube_offset", pa.int64(), nullable=False),
    pa.field("_danube_message_id", pa.string(), nullable=False),
    pa.field("_danube_publish_time", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("_danube_key", pa.string(), nullable=True),
    pa.field("_danube_attributes", pa.string(), nullable=False),
)


def _metadata(r: SinkRecord) -> tuple[Any, ...]:
    return (
        r.topic,
        r.partition,
        r.offset,
        r.message_id,
        _EPOCH + dt.timedelta(microseconds=r.publish_time),
        r.key,
        orjson.dumps(dict(r.attributes)).decode(),
    )


@dataclass
class BuiltRows:
    """The rows of the records that converted, in batch order, and the reasons of those that did not."""

    table: pa.Table
    records: list[SinkRecord]
    invalid: list[tuple[SinkRecord, str]] = field(default_factory=list)


class _Column:
    def __init__(self, spec: ColumnMapping) -> None:
        self.spec = spec
        self.path = JsonPath(spec.path)
        self.convert: Callable[[Any], Any] = converter(spec.type)

    def value(self, payload: Any) -> Any:
        raw = self.path.get(payload)
        if raw is MISSING or raw is None:
            if self.spec.nullable:
                return None
            what = "missing" if raw is MISSING else "null"
            raise ValueError(f"{self.spec.path} is {what} but column {self.spec.column} is not nullable")
        try:
            return self.convert(raw)
        except ValueError as exc:
            raise ValueError(f"column {self.spec.column} ({self.spec.path}): {exc}") from None


class RowBuilder:
    """Converts records for one mapping; ``schema`` is the table's Arrow schema (data then metadata)."""

    def __init__(self, columns: Sequence[ColumnMapping], include_metadata: bool) -> None:
        self.columns = [_Column(c) for c in columns]
        self.include_metadata = include_metadata
        fields = [pa.field(c.column, arrow_type(c.type), nullable=c.nullable) for c in columns]
        if include_metadata:
            fields += list(METADATA_FIELDS)
        self.schema = pa.schema(fields)

    def build(self, records: Sequence[SinkRecord]) -> BuiltRows:
        width = len(self.schema)
        values: list[list[Any]] = [[] for _ in range(width)]
        kept: list[SinkRecord] = []
        invalid: list[tuple[SinkRecord, str]] = []
        for record in records:
            try:
                row = self.row(record)
            except ValueError as exc:
                invalid.append((record, str(exc)))
                continue
            kept.append(record)
            for i, v in enumerate(row):
                values[i].append(v)
        arrays = [pa.array(col, type=f.type) for col, f in zip(values, self.schema, strict=True)]
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        return BuiltRows(table, kept, invalid)

    def row(self, record: SinkRecord) -> tuple[Any, ...]:
        payload = record.payload
        data = tuple(c.value(payload) for c in self.columns)
        if self.include_metadata:
            return data + _metadata(record)
        return data
