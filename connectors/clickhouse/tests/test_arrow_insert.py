"""The Arrow insert (RowBuilder.build_table + TableWriter.write_table) against the real engine (chdb):
it stores exactly what the row insert stores, rejects the same records for the same reasons, and keeps
the row insert's replay de-duplication."""

from __future__ import annotations

import re
from typing import Any

import pytest
from danube_connect_core.records import SinkRecord
from danube_sink_clickhouse.rows import RowBuilder
from danube_sink_clickhouse.table_schema import describe_table
from danube_sink_clickhouse.writer import TableWriter

from .clickhouse_helpers import TOPIC, event, record, table_ddl

CH = tuple[Any, str, str]


def parts(client: Any, db: str, table: str, **builder: Any) -> tuple[RowBuilder, TableWriter]:
    schema = describe_table(client, db, table)
    rows = RowBuilder(
        schema,
        include_metadata=builder.get("include_metadata", True),
        field_paths=builder.get("field_paths", {}),
        reject_unknown=builder.get("reject_unknown", False),
    )
    writer = TableWriter(
        client, schema, topic=TOPIC, track_positions=True, insert_settings={"insert_deduplicate": 1}
    )
    return rows, writer


def via_rows(rows: RowBuilder, writer: TableWriter, batch: list[SinkRecord]) -> list[tuple[int, str]]:
    built = rows.build(batch)
    refused = writer.write(built.rows, built.records)
    return sorted((r.offset, reason) for r, reason in built.invalid + refused)


def via_arrow(rows: RowBuilder, writer: TableWriter, batch: list[SinkRecord]) -> list[tuple[int, str]]:
    built = rows.build_table(batch)
    refused = writer.write_table(built.table, built.records, built.fields)
    return sorted((r.offset, reason) for r, reason in built.invalid + refused)


def content(client: Any, db: str, table: str) -> list[tuple[Any, ...]]:
    return list(
        client.query(f"SELECT * FROM {db}.{table} ORDER BY _danube_partition, _danube_offset").result_rows
    )


def same(reason: str, table: str) -> str:
    """A reason without what differs between the two tables (name, UUID)."""
    return re.sub(r" \([0-9a-f-]{36}\)", "", reason.replace(table, "t"))


def mixed_batch() -> list[SinkRecord]:
    batch = [record(i, partition=i % 3, offset=i // 3 + 1) for i in range(60)]
    batch[5] = record(5, partition=2, offset=50, payload={**event(5), "id": "five"})
    batch[11] = record(11, partition=2, offset=51, payload={"name": "no id"})
    batch[17] = record(17, partition=2, offset=52, payload={**event(17), "amount": -1})
    batch[23] = record(23, partition=2, offset=53, payload=[1, 2])
    batch[29] = record(29, partition=None, offset=54, payload={**event(29), "at": 1714521600123, "id": 7.0})
    batch[30] = record(30, partition=1, offset=55, payload={**event(30), "amount": "2.5", "tags": "x"})
    return batch


def test_arrow_and_row_inserts_store_and_reject_the_same(ch: CH) -> None:
    client, _, db = ch
    check = ",\n    CONSTRAINT positive CHECK amount >= 0"
    for table in ("by_rows", "by_arrow"):
        client.command(table_ddl(db, table, extra=check))
    rows_a, writer_a = parts(client, db, "by_rows")
    rows_b, writer_b = parts(client, db, "by_arrow")
    assert rows_b.arrow
    batch = mixed_batch()
    refused_rows = via_rows(rows_a, writer_a, batch)
    refused_arrow = via_arrow(rows_b, writer_b, batch)
    assert [o for o, _ in refused_arrow] == [o for o, _ in refused_rows] == [50, 51, 52, 53, 55]
    assert [same(r, "by_arrow") for _, r in refused_arrow] == [same(r, "by_rows") for _, r in refused_rows]
    assert content(client, db, "by_arrow") == content(client, db, "by_rows")
    assert len(content(client, db, "by_arrow")) == 55


@pytest.mark.parametrize("via", [via_rows, via_arrow], ids=["rows", "arrow"])
def test_replay_rebatched_is_skipped(ch: CH, via: Any) -> None:
    """Both forms: a restart re-reads the positions (partitions 0, 1 and none) and skips what is held."""
    client, _, db = ch
    client.command(table_ddl(db))

    def batch(lo: int, hi: int) -> list[SinkRecord]:
        return [record(i, partition=(0, 1, None)[i % 3], offset=i // 3 + 1) for i in range(lo, hi)]

    rows, writer = parts(client, db, "events")
    assert via(rows, writer, batch(0, 300)) == []
    rows2, writer2 = parts(client, db, "events")  # a restart: positions read from the table again
    via(rows2, writer2, batch(100, 450))
    via(rows2, writer2, batch(440, 500))
    ids = [r[0] for r in client.query(f"SELECT id FROM {db}.events ORDER BY id").result_rows]
    assert ids == list(range(500))


def test_same_batch_token_matches_the_row_insert(ch: CH) -> None:
    """Without positions only the token de-duplicates: an Arrow insert after a row insert of the same
    batch (an upgrade between a write and its replay) is dropped by the server."""
    client, _, db = ch
    client.command(table_ddl(db, metadata=False))
    schema = describe_table(client, db, "events")
    builder = RowBuilder(schema, include_metadata=False, field_paths={}, reject_unknown=False)
    writer = TableWriter(
        client, schema, topic=TOPIC, track_positions=False, insert_settings={"insert_deduplicate": 1}
    )
    batch = [record(i) for i in range(50)]
    built = builder.build(batch)
    writer.write(built.rows, built.records)
    table = builder.build_table(batch)
    writer.write_table(table.table, table.records, table.fields)
    assert client.query(f"SELECT count() FROM {db}.events").result_rows[0][0] == 50


def test_unknown_fields_and_types_without_an_arrow_form(ch: CH) -> None:
    client, _, db = ch
    client.command(table_ddl(db))
    rows, writer = parts(client, db, "events", reject_unknown=True)
    refused = via_arrow(rows, writer, [record(0), record(1, payload={**event(1), "surprise": 1})])
    assert refused == [(1, "fields without a column: surprise")]
    client.command(f"CREATE TABLE {db}.wide (id Int64, big Int128) ENGINE = MergeTree ORDER BY id")
    wide, _ = parts(client, db, "wide", include_metadata=False)
    assert not wide.arrow  # Int128 stays on the row insert
