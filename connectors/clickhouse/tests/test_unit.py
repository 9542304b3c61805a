"""Unit tests of the ClickHouse sink against the real engine (chdb, in-process)."""

from __future__ import annotations

from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from danube_connect_core.errors import Fatal
from danube_connect_core.testing import write_batch
from danube_sink_clickhouse.column_types import converter_for
from danube_sink_clickhouse.connection import redacted
from danube_sink_clickhouse.failures import FailureKind, classify
from danube_sink_clickhouse.settings import ClickHouseSettings
from pydantic import ValidationError

from .clickhouse_helpers import TOPIC, event, record, sink_for, table_ddl

CH = tuple[Any, str, str]


def count(client: Any, db: str, table: str = "events") -> int:
    return int(client.query(f"SELECT count() FROM {db}.{table}").result_rows[0][0])


async def test_5000_rows_in_one_batch(ch: CH) -> None:
    client, dsn, db = ch
    client.command(table_ddl(db))
    sink = await sink_for(dsn, db)
    await write_batch(sink, [record(i, partition=i % 4, offset=i // 4) for i in range(5000)])
    assert count(client, db) == 5000
    rows = client.query(
        f"SELECT id, name, amount, region, toString(at), tags, _danube_partition, _danube_offset, "
        f"_danube_message_id, _danube_attributes FROM {db}.events ORDER BY id"
    ).result_rows
    assert [r[0] for r in rows] == list(range(5000))
    r = rows[4001]
    assert r[1:6] == ("n4001", 4001 / 4, "eu", "2024-05-01 00:00:41.000", ["a", str(4001 % 7)])
    assert rows[3][3] is None
    assert (r[6], r[7], r[8], r[9]) == (1, 1000, f"{TOPIC}:1:1000", '{"k":"v"}')
    await sink.shutdown()


async def test_replay_rebatched_after_restart_is_skipped(ch: CH) -> None:
    client, dsn, db = ch
    client.command(table_ddl(db))
    sink = await sink_for(dsn, db)
    await write_batch(sink, [record(i, partition=i % 2, offset=i // 2) for i in range(300)])
    restarted = await sink_for(dsn, db)  # fresh positions; the redelivery is cut differently
    await write_batch(restarted, [record(i, partition=i % 2, offset=i // 2) for i in range(100, 450)])
    await write_batch(restarted, [record(i, partition=i % 2, offset=i // 2) for i in range(440, 500)])
    assert count(client, db) == 500
    dupes = client.query(
        f"SELECT count() FROM (SELECT id FROM {db}.events GROUP BY id HAVING count() > 1)"
    ).result_rows[0][0]
    assert dupes == 0


async def test_same_batch_twice_is_dropped_by_the_token_without_metadata(ch: CH) -> None:
    client, dsn, db = ch
    client.command(table_ddl(db, metadata=False))
    sink = await sink_for(dsn, db, include_metadata=False)
    batch = [record(i) for i in range(50)]
    await write_batch(sink, batch)
    restarted = await sink_for(dsn, db, include_metadata=False)
    await write_batch(restarted, batch)
    assert count(client, db) == 50


async def test_invalid_rows_are_named_and_the_rest_inserted(ch: CH) -> None:
    client, dsn, db = ch
    client.command(table_ddl(db, extra=",\n    CONSTRAINT positive CHECK amount >= 0"))
    sink = await sink_for(dsn, db)
    batch = [record(i) for i in range(40)]
    batch[5] = record(5, payload={**event(5), "id": "five"})  # our converter refuses
    batch[11] = record(11, payload={"name": "no id"})  # missing non-nullable
    batch[23] = record(23, payload={**event(23), "amount": -1})  # the table refuses (bisection)
    batch[31] = record(31, payload=[1, 2])
    reported = await write_batch(sink, batch)
    assert reported.retried == {}
    reasons = {r.offset: reported.rejected[r.message_id] for r in batch if r.message_id in reported.rejected}
    assert sorted(reasons) == [5, 11, 23, 31]
    assert "expected an integer" in reasons[5]
    assert "missing" in reasons[11]
    assert "refused" in reasons[23]
    ids = [r[0] for r in client.query(f"SELECT id FROM {db}.events ORDER BY id").result_rows]
    assert ids == [i for i in range(40) if i not in (5, 11, 23, 31)]


async def test_unknown_fields_rejected_when_configured(ch: CH) -> None:
    client, dsn, db = ch
    client.command(table_ddl(db))
    sink = await sink_for(dsn, db, unknown_fields="reject")
    reported = await write_batch(sink, [record(0), record(1, payload={**event(1), "surprise": 1})])
    (reason,) = reported.rejected.values()
    assert "fields without a column: surprise" in reason
    assert count(client, db) == 1
    lenient = await sink_for(dsn, db)
    await write_batch(lenient, [record(2, payload={**event(2), "surprise": 1})])
    assert count(client, db) == 2


async def test_missing_table_is_fatal(ch: CH) -> None:
    _, dsn, db = ch
    with pytest.raises(Fatal, match="refused"):
        await sink_for(dsn, db, table="nope")


def test_classification() -> None:
    assert classify(OperationalError("connection refused")) is FailureKind.RETRYABLE
    assert classify(DatabaseError("Code: 252. DB::Exception: Too many parts")) is FailureKind.RETRYABLE
    assert classify(DatabaseError("Code: 6. DB::Exception: Cannot parse")) is FailureKind.DATA
    assert classify(DatabaseError("Code: 516. DB::Exception: Authentication failed")) is FailureKind.FATAL
    assert classify(ValueError("bad value")) is FailureKind.DATA


def test_converters() -> None:
    assert converter_for("Nullable(Int8)")(None) is None
    with pytest.raises(ValueError, match="out of range"):
        converter_for("UInt8")(300)
    assert converter_for("LowCardinality(String)")({"a": 1}) == '{"a":1}'
    assert converter_for("Array(Int32)")(["1", 2]) == [1, 2]
    assert str(converter_for("DateTime64(3, 'UTC')")(0)) == "1970-01-01 00:00:00+00:00"


def test_integers_beyond_64_bits_are_exact_or_refused() -> None:
    big = 10**20 + 1
    # JSON text keeps it exact (orjson.dumps raised "Integer exceeds 64-bit range": an endless retry)
    assert converter_for("String")(big) == "100000000000000000001"
    assert converter_for("Nullable(String)")({"k": [big, -big]}) == (
        '{"k":[100000000000000000001,-100000000000000000001]}'
    )
    assert converter_for("Int128")(big) == big and converter_for("UInt256")(big) == big
    assert str(converter_for("Decimal(38, 0)")(big)) == "100000000000000000001"
    # a column that cannot hold it refuses (ValueError -> the row is dead-lettered, not rounded)
    with pytest.raises(ValueError, match="out of range"):
        converter_for("Int64")(big)
    with pytest.raises(ValueError, match="out of range"):
        converter_for("Array(UInt64)")([1, 2**64])
    for float_type in ("Float64", "Nullable(Float32)"):
        with pytest.raises(ValueError, match="beyond 64 bits"):
            converter_for(float_type)(-big)
    with pytest.raises(ValueError, match=r"\(401 digits\)"):
        converter_for("Float64")(10**400)  # float() would raise OverflowError: no longer a crash
    assert converter_for("Float64")(2**64 - 1) == float(2**64 - 1)  # the 64-bit edge still fits
    with pytest.raises(ValueError, match="cannot be written as JSON"):
        converter_for("String")({"blob": b"\x00"})  # Avro bytes nested in an object


def test_big_integer_rows_are_named_invalid_before_the_insert() -> None:
    from danube_sink_clickhouse.rows import RowBuilder
    from danube_sink_clickhouse.table_schema import TableColumn, TableSchema

    columns = [("id", "UInt64"), ("amount", "Float64"), ("raw", "String")]
    schema = TableSchema(
        "db", "events", tuple(TableColumn(n, t, False, converter_for(t)) for n, t in columns)
    )
    builder = RowBuilder(schema, include_metadata=False, field_paths={}, reject_unknown=False)
    good = record(0, payload={"id": 1, "amount": 1.5, "raw": {"n": 10**20}})
    bad = record(1, payload={"id": 2**64, "amount": 1.5, "raw": "x"})
    built = builder.build([good, bad])
    assert built.rows == [[1, 1.5, '{"n":100000000000000000000}']]
    assert [(r.offset, reason) for r, reason in built.invalid] == [
        (1, f"column id (UInt64): integer {2**64} out of range [0, {2**64 - 1}]")
    ]


def test_settings_and_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="http://"):
        ClickHouseSettings.model_validate(
            {"url": "tcp://x", "topic_mappings": [{"topic": "t", "subscription": "s", "table": "t"}]}
        )
    monkeypatch.setenv("CH_PW", "s3cret")
    s = ClickHouseSettings.model_validate(
        {"password": "CH_PW", "topic_mappings": [{"topic": "t", "subscription": "s", "table": "t"}]}
    )
    assert s.password is not None and "s3cret" not in repr(s)
    assert redacted("https://user:pw@host:8443") == "https://host:8443"
