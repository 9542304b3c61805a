"""A target table's own schema (``DESCRIBE TABLE``) and how each column is filled from a record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from danube_sink_clickhouse.column_types import Converter, converter_for, is_nullable

__all__ = ["METADATA_COLUMNS", "TableColumn", "TableSchema", "describe_table"]

#: The message metadata a table may hold (filled when the mapping sets ``include_metadata``).
METADATA_COLUMNS = (
    "_danube_topic",
    "_danube_partition",
    "_danube_offset",
    "_danube_message_id",
    "_danube_publish_time",
    "_danube_key",
    "_danube_attributes",
)

_NOT_INSERTABLE = frozenset({"MATERIALIZED", "ALIAS", "EPHEMERAL"})


@dataclass(frozen=True)
class TableColumn:
    name: str
    type: str
    nullable: bool
    convert: Converter


@dataclass(frozen=True)
class TableSchema:
    database: str
    table: str
    columns: tuple[TableColumn, ...]

    @property
    def qualified(self) -> str:
        return f"`{self.database}`.`{self.table}`"

    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def has(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)


def describe_table(client: Any, database: str, table: str) -> TableSchema:
    """The insertable columns of ``database.table`` in table order (raises when it does not exist)."""
    result = client.query(f"DESCRIBE TABLE `{database}`.`{table}`")
    columns = []
    for row in result.result_rows:
        name, ch_type, default_kind = row[0], row[1], row[2]
        if default_kind in _NOT_INSERTABLE:
            continue
        columns.append(TableColumn(name, ch_type, is_nullable(ch_type), converter_for(ch_type)))
    return TableSchema(database, table, tuple(columns))
