"""A batch of SinkRecords -> one Arrow table in the mapping's schema, plus the records that do not fit.

Every convertible record of the batch becomes a row (no truncation at any batch size); a record whose
payload cannot fill a column (wrong type, missing non-nullable value) is reported with its reason instead,
so only it is dead-lettered (invariant 5). The columns are built for the whole batch at once by
connect-core's :func:`~danube_connect_core.columns.build_columns` (no Python code per record where the
values already have the column's type).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter

import pyarrow as pa  # type: ignore[import-untyped]
from danube_connect_core import SinkRecord
from danube_connect_core.columns import Column, RecordFields, build_columns, record_fields

from danube_sink_deltalake.column_types import arrow_type, converter, fast_kind
from danube_sink_deltalake.json_path import JsonPath
from danube_sink_deltalake.settings import ColumnMapping

__all__ = ["METADATA_FIELDS", "BuiltRows", "RowBuilder"]

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

_PAYLOAD = attrgetter("payload")
_POSITION = attrgetter("partition", "offset")


@dataclass
class BuiltRows:
    """The rows of the records that converted, in batch order, and the reasons of those that did not.

    ``positions`` are the kept records' (partition, offset), aligned with ``table``.
    """

    table: pa.Table
    records: list[SinkRecord]
    invalid: list[tuple[SinkRecord, str]] = field(default_factory=list)
    positions: list[tuple[int | None, int]] = field(default_factory=list)


def _column(spec: ColumnMapping) -> Column:
    path = JsonPath(spec.path)
    steps = path.steps
    single = len(steps) == 1 and isinstance(steps[0], str)
    return Column(
        name=spec.column,
        arrow_type=arrow_type(spec.type),
        nullable=spec.nullable,
        convert=converter(spec.type),
        fast=fast_kind(spec.type),
        missing_reason=lambda what: f"{spec.path} is {what} but column {spec.column} is not nullable",
        error_prefix=f"column {spec.column} ({spec.path})",
        key=steps[0] if single and isinstance(steps[0], str) else None,
        get=path.get if steps and not single else None,
    )


class RowBuilder:
    """Converts records for one mapping; ``schema`` is the table's Arrow schema (data then metadata)."""

    def __init__(self, columns: Sequence[ColumnMapping], include_metadata: bool) -> None:
        self.columns = [_column(c) for c in columns]
        self.include_metadata = include_metadata
        fields = [pa.field(c.column, arrow_type(c.type), nullable=c.nullable) for c in columns]
        if include_metadata:
            fields += list(METADATA_FIELDS)
        self.schema = pa.schema(fields)

    def build(self, records: Sequence[SinkRecord]) -> BuiltRows:
        records = list(records)
        payloads = list(map(_PAYLOAD, records))
        positions = list(map(_POSITION, records))  # right after: the records are still in the cache
        built = build_columns(self.columns, payloads)
        arrays = built.arrays
        if self.include_metadata:
            arrays = arrays + _metadata(record_fields(records))
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        mask = built.keep_mask(len(records))
        if mask is None:
            return BuiltRows(table, records, [], positions)
        kept = list(compress(records, mask))
        invalid = [(records[i], reason) for i, reason in sorted(built.rejected.items())]
        keep = pa.array(mask, pa.bool_())
        return BuiltRows(table.filter(keep), kept, invalid, list(compress(positions, mask)))


def _metadata(meta: RecordFields) -> list[pa.Array]:
    return [
        meta.topics,
        meta.partitions,
        meta.offsets,
        meta.message_ids,
        meta.publish_micros.cast(pa.timestamp("us", tz="UTC")),
        meta.keys,
        meta.attributes,
    ]
