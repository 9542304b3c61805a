"""Records -> rows in the table's column order, plus the records that cannot be inserted (with reasons)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from danube_connect_core import SinkRecord

from danube_sink_clickhouse.table_schema import METADATA_COLUMNS, TableColumn, TableSchema

__all__ = ["BuiltRows", "RowBuilder"]

_MISSING = object()

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


@dataclass
class BuiltRows:
    rows: list[list[Any]] = field(default_factory=list)
    records: list[SinkRecord] = field(default_factory=list)
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


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    node = doc
    for step in path:
        if not isinstance(node, dict) or step not in node:
            return _MISSING
        node = node[step]
    return node
