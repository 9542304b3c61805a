"""Records -> rows in the table's column order, plus the records that cannot be inserted (with reasons)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from danube_connect_core.records import SinkRecord

from danube_sink_clickhouse.table_schema import METADATA_COLUMNS, TableSchema

__all__ = ["BuiltRows", "RowBuilder"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MISSING = object()


@dataclass
class BuiltRows:
    rows: list[list[Any]] = field(default_factory=list)
    records: list[SinkRecord] = field(default_factory=list)
    invalid: list[tuple[SinkRecord, str]] = field(default_factory=list)


def _metadata(name: str, r: SinkRecord) -> Any:
    if name == "_danube_topic":
        return r.topic
    if name == "_danube_partition":
        return r.partition if r.partition is not None else -1
    if name == "_danube_offset":
        return r.offset
    if name == "_danube_message_id":
        return r.message_id
    if name == "_danube_publish_time":
        return _EPOCH + dt.timedelta(microseconds=r.publish_time)
    if name == "_danube_key":
        return r.key if r.key is not None else ""
    return orjson.dumps(dict(r.attributes)).decode()


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
        self.paths = {c.name: tuple(field_paths.get(c.name, c.name).split(".")) for c in schema.columns}
        self.known_fields = {p[0] for p in self.paths.values()}

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
        if not isinstance(payload, dict):
            raise ValueError("payload is not a JSON object")
        if self.reject_unknown:
            unknown = sorted(k for k in payload if k not in self.known_fields)
            if unknown:
                raise ValueError(f"fields without a column: {', '.join(unknown[:10])}")
        row = []
        for c in self.schema.columns:
            if self.include_metadata and c.name in METADATA_COLUMNS:
                row.append(c.convert(_metadata(c.name, r)))
                continue
            value = _get(payload, self.paths[c.name])
            if value is _MISSING or value is None:
                if not c.nullable:
                    what = "missing" if value is _MISSING else "null"
                    raise ValueError(f"field for column {c.name} ({c.type}) is {what}")
                row.append(None)
                continue
            try:
                row.append(c.convert(value))
            except ValueError as exc:
                raise ValueError(f"column {c.name} ({c.type}): {exc}") from None
        return row


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    node = doc
    for step in path:
        if not isinstance(node, dict) or step not in node:
            return _MISSING
        node = node[step]
    return node
