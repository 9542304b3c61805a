"""Values that are easy to lose, on every path (snapshot, wal2json, pgoutput), with a real PostgreSQL 15:

- NaN, Infinity and -Infinity of real, double precision and numeric columns arrive as those strings;
- json and jsonb values keep every digit of their numbers (the bytes on the topic hold PostgreSQL's text);
- a table whose UPDATEs and DELETEs cannot be captured is refused at start with the fix named, and no
  publication is created that would break the application's own writes.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from danube_connect_core.client import DanubeClient
from danube_connect_core.errors import ConfigError
from danube_connect_core.testing import make_config, start_runtime
from danube_source_postgres_cdc import PostgresCdcSource

from .cdc_helpers import settings, take_raw, wait_ready

pytestmark = pytest.mark.asyncio(loop_scope="function")

TABLE = """
CREATE TABLE readings (id int PRIMARY KEY, r real, d double precision, n numeric, j json, jb jsonb)
"""
SPECIALS = ("NaN", "Infinity", "-Infinity")
# Text PostgreSQL keeps exactly: json stores the input verbatim, jsonb as numeric (1E3 is shown as 1000).
JSON_TEXT = '{"price": 1.50, "big": 123456789012345678901234567890, "tiny": 0.10000000000000000000000000001}'
JSONB_NUMBERS = (b"1.50", b"123456789012345678901234567890", b"0.10000000000000000000000000001")


async def _insert(conn: Any, first_id: int) -> None:
    for i, special in enumerate(SPECIALS):
        await conn.execute(
            "INSERT INTO readings VALUES ($1, $2::text::real, $2::text::float8, $2::text::numeric,"
            " $3::text::json, $3::text::jsonb)",
            first_id + i,
            special,
            JSON_TEXT,
        )


@pytest.mark.parametrize("plugin", ["wal2json", "pgoutput"])
async def test_special_numbers_and_exact_json_on_every_path(
    pg_db: Any, broker: Any, plugin: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await pg_db.connect()
    await conn.execute(TABLE)
    await _insert(conn, 1)  # read by the snapshot
    topic = "/default/readings"
    client = DanubeClient(broker.url)  # create the topic and subscribe before the connector publishes
    await (await client.create_producer(topic, "creator", reliable=True)).close()
    consumer = await client.subscribe(topic, "exact-reader", consumer_name="exact-reader")
    s = settings(
        pg_db.dsn, [{"table": "readings", "danube_topic": topic}], plugin=plugin, slot_name=f"x_{plugin}"
    )
    caplog.set_level(logging.WARNING, logger="danube_connect.postgres_cdc")
    running = await start_runtime(PostgresCdcSource(), make_config(broker.url, f"exact-{plugin}", s))
    try:
        await wait_ready(running.port)
        await _insert(conn, 10)  # read from the slot
        messages = await take_raw(consumer, 6)
    finally:
        await running.stop()
        await client.close()
        await conn.close()

    by_op: dict[str, list[dict[str, Any]]] = {"r": [], "c": []}
    for msg in messages:
        for number in JSONB_NUMBERS:
            assert msg.payload.count(number) == 2, (number, msg.payload)  # in j and in jb, verbatim
        assert JSON_TEXT.encode() in msg.payload  # the json column exactly as stored
        event = orjson.loads(msg.payload)
        by_op[event["op"]].append(event["after"])
    assert len(by_op["r"]) == 3 and len(by_op["c"]) == 3

    snapshot = sorted(by_op["r"], key=lambda row: row["id"])
    assert [(row["r"], row["d"], row["n"]) for row in snapshot] == [(v, v, v) for v in SPECIALS]
    stream = sorted(by_op["c"], key=lambda row: row["id"])
    if plugin == "pgoutput" or _wal2json_has_number_strings(caplog):
        assert [(row["r"], row["d"], row["n"]) for row in stream] == [(v, v, v) for v in SPECIALS]
    else:
        # wal2json < 2.6 writes these as null; the connector says so at start, naming the columns.
        warning = " ".join(r.getMessage() for r in caplog.records)
        for column in ("public.readings.r", "public.readings.d", "public.readings.n"):
            assert column in warning
        assert 'postgres.plugin = "pgoutput"' in warning


def _wal2json_has_number_strings(caplog: pytest.LogCaptureFixture) -> bool:
    """The connector probes wal2json for ``numeric-data-types-as-string`` and warns when it is missing."""
    return not any("writes NaN, Infinity and -Infinity as null" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("plugin", ["wal2json", "pgoutput"])
@pytest.mark.parametrize(
    ("ddl", "why"),
    [
        ("CREATE TABLE events (id int, body text)", "no primary key"),
        (
            "CREATE TABLE events (id int PRIMARY KEY, body text);"
            " ALTER TABLE events REPLICA IDENTITY NOTHING",
            "NOTHING",
        ),
        (
            "CREATE TABLE events (id int NOT NULL, body text); CREATE UNIQUE INDEX events_id ON events (id);"
            " ALTER TABLE events REPLICA IDENTITY USING INDEX events_id; DROP INDEX events_id",
            "no longer exists",
        ),
    ],
)
async def test_a_table_without_usable_replica_identity_is_refused_and_the_application_keeps_writing(
    pg_db: Any, broker: Any, plugin: str, ddl: str, why: str
) -> None:
    conn = await pg_db.connect()
    try:
        await conn.execute(ddl)
        await conn.execute("INSERT INTO events VALUES (1, 'a')")
        s = settings(
            pg_db.dsn, [{"table": "events", "danube_topic": "/default/events"}], plugin=plugin, slot_name="ri"
        )
        connector = PostgresCdcSource()
        with pytest.raises(ConfigError) as info:
            await connector.initialize(make_config(broker.url, "ri", s))
        message = str(info.value)
        assert "public.events cannot be captured" in message and why in message
        assert 'ALTER TABLE "public"."events" REPLICA IDENTITY FULL' in message
        assert info.value.key == "postgres.table_mappings[0].table"
        # No publication was created, so the application's UPDATE and DELETE still work.
        assert await conn.fetchval("SELECT count(*) FROM pg_publication") == 0
        await conn.execute("UPDATE events SET body = 'b' WHERE id = 1")
        await conn.execute("DELETE FROM events WHERE id = 1")
        # Following the advice makes the table capturable.
        await conn.execute("ALTER TABLE events REPLICA IDENTITY FULL")
        connector = PostgresCdcSource()
        await connector.initialize(make_config(broker.url, "ri", s))
        await connector.shutdown()
        await conn.execute("SELECT pg_drop_replication_slot('ri')")
    finally:
        await conn.close()
