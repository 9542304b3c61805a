"""Records -> the table's columns, plus the records that cannot be inserted (with reasons).

Two forms of the same conversion (connect-core's rules, :mod:`danube_connect_core.columns`):

- :meth:`RowBuilder.build_table`: one Arrow table for the whole batch, built per column in one pyarrow
  call where the values already have the column's type (no Python code per record); the writer inserts
  it with ``insert_arrow``. Available when every column of the table has an Arrow form
  (:func:`.column_types.arrow_form`); ``RowBuilder.arrow`` says so.
- :meth:`RowBuilder.build`: Python rows in the table's column order for ``client.insert`` (tables with a
  column type that has no Arrow form: Int128, Decimal, UUID, Enum, Map, ...).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
from danube_connect_core import SinkRecord
from danube_connect_core import columns as col

from danube_sink_clickhouse.column_types import ArrowForm, arrow_form
from danube_sink_clickhouse.table_schema import METADATA_COLUMNS, TableColumn, TableSchema

__all__ = ["BuiltRows", "BuiltTable", "RowBuilder"]

_MISSING = col.MISSING
_PAYLOAD = attrgetter("payload")

Cell = Callable[[SinkRecord, dict[str, Any]], Any]

_METADATA: dict[str, Callable[[SinkRecord], Any]] = {
    "_danube_topic": lambda r: r.topic,
    "_danube_partition": lambda r: r.partition if r.partition is not None else -1,
    "_danube_offset": lambda r: r.offset,
    "_danube_message_id": lambda r: r.message_id,
    "_danube_publish_time": lambda r: dt.datetime.fromtimestamp(r.publish_time / 1e6, dt.UTC),
    "_danube_key": lambda r: r.key if r.key is not None else "",
    "_danube_attributes": lambda r: orjson.dumps(dict(r.attributes)).decode(),
}

#: The Arrow kind each metadata column must have for the Arrow insert (else the table uses row inserts).
_METADATA_KIND: dict[str, Callable[[pa.DataType], bool]] = {
    "_danube_topic": pa.types.is_string,
    "_danube_partition": pa.types.is_integer,
    "_danube_offset": pa.types.is_integer,
    "_danube_message_id": pa.types.is_string,
    "_danube_publish_time": pa.types.is_timestamp,
    "_danube_key": pa.types.is_string,
    "_danube_attributes": pa.types.is_string,
}


@dataclass
class BuiltRows:
    rows: list[list[Any]] = field(default_factory=list)
    records: list[SinkRecord] = field(default_factory=list)
    invalid: list[tuple[SinkRecord, str]] = field(default_factory=list)


@dataclass
class BuiltTable:
    """The insertable records as one Arrow table (batch order), their message fields (aligned with the
    table: positions and ids for the writer), and the records that cannot be inserted, with reasons."""

    table: pa.Table
    records: list[SinkRecord]
    fields: col.RecordFields
    invalid: list[tuple[SinkRecord, str]] = field(default_factory=list)


class RowBuilder:
    """Fills each insertable column from the payload field of the same name (or its ``field_paths`` path).

    A missing or null value is allowed only for Nullable columns. Metadata columns are filled from the
    message when ``include_metadata`` is set (and left to the payload otherwise).
    """

    def __init__(
        self,
        schema: TableSchema,
        *,
        include_metadata: bool,
        field_paths: Mapping[str, str],
        reject_unknown: bool,
    ) -> None:
        self.schema = schema
        self.include_metadata = include_metadata
        self.reject_unknown = reject_unknown
        paths = {c.name: tuple(field_paths.get(c.name, c.name).split(".")) for c in schema.columns}
        self.known_fields = {p[0] for p in paths.values()}
        self._cells = [self._cell(c, paths[c.name]) for c in schema.columns]
        self._plan = self._arrow_plan(paths)

    # -- the Arrow form -----------------------------------------------------------------------------

    @property
    def arrow(self) -> bool:
        """Whether :meth:`build_table` can be used (every column has an Arrow form)."""
        return self._plan is not None

    def _arrow_plan(
        self, paths: Mapping[str, tuple[str, ...]]
    ) -> tuple[pa.Schema, list[col.Column | str]] | None:
        fields: list[pa.Field] = []
        plan: list[col.Column | str] = []  # a Column from the payload, or a metadata column's name
        for c in self.schema.columns:
            form = arrow_form(c.type)
            if form is None:
                return None
            fields.append(pa.field(c.name, form.arrow_type, nullable=form.nullable))
            if self.include_metadata and c.name in METADATA_COLUMNS:
                if not _METADATA_KIND[c.name](form.arrow_type):
                    return None
                plan.append(c.name)
            else:
                plan.append(_payload_column(c, form, paths[c.name]))
        return pa.schema(fields), plan

    def build_table(self, records: Sequence[SinkRecord]) -> BuiltTable:
        """The batch as one Arrow table in the table's schema (requires :attr:`arrow`)."""
        assert self._plan is not None, "build_table needs every column to have an Arrow form"
        schema, plan = self._plan
        records = list(records)
        payloads = list(map(_PAYLOAD, records))
        first = self._record_checks(payloads)  # these reasons come before any column's
        data = [c for c in plan if isinstance(c, col.Column)]
        built = col.build_columns(data, payloads)
        fields = col.record_fields(records)
        computed = iter(built.arrays)
        arrays = [
            _metadata_array(c, fields, f.type) if isinstance(c, str) else next(computed)
            for c, f in zip(plan, schema, strict=True)
        ]
        table = pa.Table.from_arrays(arrays, schema=schema)
        rejected = built.rejected | first
        if not rejected:
            return BuiltTable(table, records, fields)
        built.rejected = rejected
        mask = built.keep_mask(len(records))
        assert mask is not None
        keep = pa.array(mask, pa.bool_())
        return BuiltTable(
            table.filter(keep),
            [r for r, k in zip(records, mask, strict=True) if k],
            _filter_fields(fields, keep),
            [(records[i], reason) for i, reason in sorted(rejected.items())],
        )

    def _record_checks(self, payloads: list[Any]) -> dict[int, str]:
        """Rows refused as a whole: not a JSON object; unknown fields when ``reject_unknown``."""
        out: dict[int, str] = {}
        if set(map(type, payloads)) != {dict}:
            out = {i: "payload is not a JSON object" for i, p in enumerate(payloads) if type(p) is not dict}
        if self.reject_unknown:
            objects = [p for p in payloads if type(p) is dict] if out else payloads
            if not set(chain.from_iterable(objects)) <= self.known_fields:
                for i, p in enumerate(payloads):
                    if i not in out and type(p) is dict:
                        unknown = sorted(k for k in p if k not in self.known_fields)
                        if unknown:
                            out[i] = f"fields without a column: {', '.join(unknown[:10])}"
        return out

    # -- the row form -------------------------------------------------------------------------------

    def _cell(self, c: TableColumn, path: tuple[str, ...]) -> Cell:
        """The function computing one column's value from (record, payload); raises ValueError."""
        convert = c.convert
        if self.include_metadata and c.name in METADATA_COLUMNS:
            source = _METADATA[c.name]
            return lambda r, _: convert(source(r))
        key = path[0] if len(path) == 1 else None

        def cell(_: SinkRecord, payload: dict[str, Any]) -> Any:
            value = payload.get(key, _MISSING) if key is not None else _get(payload, path)
            if value is _MISSING or value is None:
                if c.nullable:
                    return None
                what = "missing" if value is _MISSING else "null"
                raise ValueError(f"field for column {c.name} ({c.type}) is {what}")
            try:
                return convert(value)
            except ValueError as exc:
                raise ValueError(f"column {c.name} ({c.type}): {exc}") from None

        return cell

    def build(self, records: Sequence[SinkRecord]) -> BuiltRows:
        out = BuiltRows()
        for r in records:
            try:
                row = self.row(r)
            except ValueError as exc:
                out.invalid.append((r, str(exc)))
                continue
            out.rows.append(row)
            out.records.append(r)
        return out

    def row(self, r: SinkRecord) -> list[Any]:
        payload = r.payload
        if type(payload) is not dict:
            raise ValueError("payload is not a JSON object")
        if self.reject_unknown:
            unknown = sorted(k for k in payload if k not in self.known_fields)
            if unknown:
                raise ValueError(f"fields without a column: {', '.join(unknown[:10])}")
        return [cell(r, payload) for cell in self._cells]


def _payload_column(c: TableColumn, form: ArrowForm, path: tuple[str, ...]) -> col.Column:
    return col.Column(
        name=c.name,
        arrow_type=form.arrow_type,
        nullable=form.nullable,
        convert=form.convert,
        fast=form.fast,
        missing_reason=lambda what: f"field for column {c.name} ({c.type}) is {what}",
        error_prefix=f"column {c.name} ({c.type})",
        key=path[0] if len(path) == 1 else None,
        get=(lambda p: _get(p, path)) if len(path) > 1 else None,
        value_type=form.value_type,
    )


def _metadata_array(name: str, f: col.RecordFields, arrow_type: pa.DataType) -> pa.Array:
    if name == "_danube_topic":
        a = f.topics
    elif name == "_danube_partition":
        a = f.partitions.fill_null(-1)
    elif name == "_danube_offset":
        a = f.offsets
    elif name == "_danube_message_id":
        a = f.message_ids
    elif name == "_danube_publish_time":
        a = f.publish_micros.cast(pa.timestamp("us", tz="UTC"))
        return a if a.type == arrow_type else a.cast(arrow_type, safe=False)
    elif name == "_danube_key":
        a = f.keys.fill_null("")
    else:
        a = f.attributes
    return a if a.type == arrow_type else a.cast(arrow_type)


def _filter_fields(f: col.RecordFields, keep: pa.Array) -> col.RecordFields:
    return col.RecordFields(
        topics=f.topics.filter(keep),
        partitions=f.partitions.filter(keep),
        offsets=f.offsets.filter(keep),
        publish_micros=f.publish_micros.filter(keep),
        keys=f.keys.filter(keep),
        attributes=f.attributes.filter(keep),
        message_ids=f.message_ids.filter(keep),
    )


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    node = doc
    for step in path:
        if not isinstance(node, dict) or step not in node:
            return _MISSING
        node = node[step]
    return node
