"""The example sink's write path against a real SQLite file, without a broker: rows keyed by message id,
refused records reported per record, a locked database retryable."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from danube_connect_core import Retryable, SinkRecord
from danube_connect_core.testing import make_config, write_batch
from danube_example_sqlite_sink.connector import SqliteSink
from danube_example_sqlite_sink.settings import SqliteSettings
from danube_example_sqlite_sink.testing import DatabaseLock

TOPIC = "/default/events"


def record(payload: Any, offset: int) -> SinkRecord:
    return SinkRecord(
        payload=payload,
        topic=TOPIC,
        partition=0,
        offset=offset,
        publish_time=1_700_000_000_000 + offset,
        producer_name="p",
        attributes={},
        schema=None,
        key=None,
        subscription="sqlite-sink",
    )


async def open_sink(db: Path, busy_timeout_ms: int = 5000) -> SqliteSink:
    settings = SqliteSettings.model_validate(
        {
            "path": db,
            "busy_timeout_ms": busy_timeout_ms,
            "topic_mappings": [
                {"topic": TOPIC, "subscription": "sqlite-sink", "table": "events", "columns": ["i", "name"]}
            ],
        }
    )
    sink = SqliteSink()
    await sink.initialize(make_config("http://127.0.0.1:1", "sqlite-test", settings))
    return sink


def rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT message_id, i, name FROM events ORDER BY i"))


async def test_each_record_is_one_row_and_a_redelivery_writes_nothing_twice(tmp_path: Path) -> None:
    db = tmp_path / "data" / "sink.db"
    sink = await open_sink(db)
    try:
        batch = [record({"i": i, "name": f"n{i}", "extra": [1]}, offset=i + 1) for i in range(3)]
        done = await write_batch(sink, batch)
        assert done.rejected == {} and done.retried == {}
        again = await write_batch(sink, batch[1:])  # a redelivery after a crash
        assert again.rejected == {} and again.retried == {}
    finally:
        await sink.shutdown()
    assert rows(db) == [(f"{TOPIC}:0:{i + 1}", i, f"n{i}") for i in range(3)]


async def test_records_that_cannot_be_rows_are_rejected_with_their_reason_and_the_rest_written(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sink.db"
    sink = await open_sink(db)
    bad = {
        10: ([1, 2], "payload must be a JSON object, got list"),
        11: ({"name": "x"}, "field 'i' is missing"),
        12: (
            {"i": {"a": 1}, "name": "x"},
            "field 'i' is a dict; a column takes a string, number, boolean or null",
        ),
        13: ({"i": 2**64, "name": "x"}, "field 'i' does not fit a 64-bit integer"),
    }
    good = [record({"i": i, "name": f"n{i}"}, offset=i + 1) for i in range(2)]
    try:
        done = await write_batch(sink, [*good, *(record(p, offset) for offset, (p, _) in bad.items())])
    finally:
        await sink.shutdown()
    assert done.rejected == {f"{TOPIC}:0:{offset}": reason for offset, (_, reason) in bad.items()}
    assert done.retried == {}
    assert [r[1] for r in rows(db)] == [0, 1]


async def test_a_locked_database_is_retryable_and_nothing_of_the_batch_is_written(tmp_path: Path) -> None:
    db = tmp_path / "sink.db"
    sink = await open_sink(db, busy_timeout_ms=50)
    lock = DatabaseLock(db)
    batch = [record({"i": i, "name": f"n{i}"}, offset=i + 1) for i in range(3)]
    try:
        await lock.acquire()
        with pytest.raises(Retryable, match="database is locked"):
            await write_batch(sink, batch)
        with pytest.raises(Retryable, match="database not writable"):
            await sink.health_check()
        await lock.release()
        await sink.health_check()
        await write_batch(sink, batch)  # the runtime's retry of the same batch
    finally:
        await lock.release()
        await sink.shutdown()
    assert [r[1] for r in rows(db)] == [0, 1, 2]
