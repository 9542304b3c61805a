"""``envelope = "debezium"``: the events a Debezium PostgreSQL connector's consumers expect, field by field
as Debezium documents them for PostgreSQL (JSON converter, schemas disabled), from a real PostgreSQL 15
through both output plugins: snapshot read, insert, update with an unchanged TOAST column, delete followed
by its tombstone, truncate; transaction metadata in commit order.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from danube_connect_core.client import DanubeClient
from danube_connect_core.errors import ConfigError
from danube_connect_core.testing import make_config, start_runtime
from danube_source_postgres_cdc import PostgresCdcSource

from .cdc_helpers import settings, take_raw, wait_ready

pytestmark = pytest.mark.asyncio(loop_scope="function")

EVENT_FIELDS = {"before", "after", "source", "transaction", "op", "ts_ms", "ts_us", "ts_ns"}
SOURCE_FIELDS = {
    "version",
    "connector",
    "name",
    "ts_ms",
    "ts_us",
    "ts_ns",
    "snapshot",
    "db",
    "sequence",
    "schema",
    "table",
    "txId",
    "lsn",
    "xmin",
}
TRANSACTION_FIELDS = {"id", "total_order", "data_collection_order"}


@pytest.mark.parametrize("plugin", ["wal2json", "pgoutput"])
async def test_debezium_envelope_field_by_field(pg_db: Any, broker: Any, plugin: str) -> None:
    conn = await pg_db.connect()
    await conn.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, status text, notes text);"
        "ALTER TABLE orders ALTER COLUMN notes SET STORAGE EXTERNAL;"  # stored out of line, uncompressed
        "CREATE TABLE lines (order_id int, n int, PRIMARY KEY (order_id, n))"
    )
    big = "x" * 10_000  # TOASTed: an UPDATE that does not touch it leaves it out of the WAL
    await conn.execute("INSERT INTO orders VALUES (1, 'new', $1)", big)
    topics = {"orders": "/default/dbz-orders", "lines": "/default/dbz-lines"}
    client = DanubeClient(broker.url)
    consumers = {}
    for table, topic in topics.items():
        await (await client.create_producer(topic, "creator", reliable=True)).close()
        consumers[table] = await client.subscribe(topic, "dbz-reader", consumer_name="dbz-reader")
    s = settings(
        pg_db.dsn,
        [{"table": t, "danube_topic": topic} for t, topic in topics.items()],
        plugin=plugin,
        slot_name=f"dbz_{plugin}",
        envelope="debezium",
    )
    running = await start_runtime(PostgresCdcSource(), make_config(broker.url, "dbz-server", s))
    try:
        await wait_ready(running.port)
        async with conn.transaction():
            await conn.execute("INSERT INTO orders VALUES (2, 'new', 'short')")
            await conn.execute("INSERT INTO lines VALUES (2, 1)")
            await conn.execute("UPDATE orders SET status = 'paid' WHERE id = 1")  # notes untouched
            await conn.execute("DELETE FROM orders WHERE id = 2")
        await conn.execute("TRUNCATE lines")
        # orders: r(1), c(2), u(1), d(2), tombstone(2); lines: c(2,1), t
        orders = await take_raw(consumers["orders"], 5)
        lines = await take_raw(consumers["lines"], 2)
    finally:
        await running.stop()
        await client.close()
        await conn.close()

    tombstones = [m for m in orders if m.payload == b""]
    assert len(tombstones) == 1 and tombstones[0].routing_key == "2"
    assert tombstones[0].attributes["cdc.op"] == "tombstone"
    events = [orjson.loads(m.payload) for m in orders if m.payload] + [orjson.loads(m.payload) for m in lines]
    by_op = {(e["source"]["table"], e["op"]): e for e in events}
    assert set(by_op) == {
        ("orders", "r"),
        ("orders", "c"),
        ("orders", "u"),
        ("orders", "d"),
        ("lines", "c"),
        ("lines", "t"),
    }
    for event in events:
        assert set(event) == EVENT_FIELDS
        source = event["source"]
        assert set(source) == SOURCE_FIELDS
        assert source["connector"] == "postgresql" and source["name"] == "dbz-server"
        assert source["db"] == pg_db.name and source["schema"] == "public"
        assert isinstance(source["version"], str) and isinstance(source["lsn"], int)
        assert source["ts_us"] == source["ts_ms"] * 1000 and source["xmin"] is None
        assert isinstance(event["ts_ms"], int) and event["ts_ns"] // 1_000_000 == event["ts_ms"]

    read = by_op[("orders", "r")]
    assert read["source"]["snapshot"] == "last"  # the snapshot's only (so last) row
    assert read["before"] is None and read["after"] == {"id": 1, "status": "new", "notes": big}
    assert (
        read["transaction"] is None and read["source"]["txId"] is None and read["source"]["sequence"] is None
    )

    streamed = [e for e in events if e["op"] != "r"]
    for event in streamed:
        assert event["source"]["snapshot"] == "false"
        tx_id = event["source"]["txId"]
        assert isinstance(tx_id, int)
        sequence = orjson.loads(event["source"]["sequence"])
        assert len(sequence) == 2 and all(isinstance(x, str) for x in sequence)
        assert int(sequence[1]) == event["source"]["lsn"]
        transaction = event["transaction"]
        assert set(transaction) == TRANSACTION_FIELDS
        assert transaction["id"].startswith(f"{tx_id}:")

    insert, update, delete = by_op[("orders", "c")], by_op[("orders", "u")], by_op[("orders", "d")]
    line = by_op[("lines", "c")]
    # One transaction, four events in commit order: total order over all, per table the collection order.
    same_tx = [insert, line, update, delete]
    assert len({e["transaction"]["id"] for e in same_tx}) == 1
    assert [e["transaction"]["total_order"] for e in same_tx] == [1, 2, 3, 4]
    assert [e["transaction"]["data_collection_order"] for e in same_tx] == [1, 1, 2, 3]
    assert insert["before"] is None and insert["after"] == {"id": 2, "status": "new", "notes": "short"}
    assert line["after"] == {"order_id": 2, "n": 1}
    assert update["after"] == {"id": 1, "status": "paid", "notes": "__debezium_unavailable_value"}
    # REPLICA IDENTITY DEFAULT logs the key: wal2json sends it; pgoutput only when the key changed (as
    # Debezium shows it: before is null then).
    assert update["before"] == ({"id": 1} if plugin == "wal2json" else None)
    assert delete["after"] is None and delete["before"]["id"] == 2
    truncate = by_op[("lines", "t")]
    assert truncate["before"] is None and truncate["after"] is None


async def test_tombstones_on_a_topic_with_a_schema_are_refused(
    pg_db: Any, broker: Any, tmp_path: Any
) -> None:
    schema = tmp_path / "any.json"
    schema.write_text('{"type": "object"}')
    s = settings(
        pg_db.dsn, [{"table": "t", "danube_topic": "/default/dbz"}], envelope="debezium", slot_name="dbz_s"
    )
    config = make_config(
        broker.url,
        "dbz",
        s,
        schemas=[
            {
                "topic": "/default/dbz",
                "subject": "dbz",
                "schema_type": "json_schema",
                "schema_file": str(schema),
            }
        ],
    )
    with pytest.raises(ConfigError, match="tombstones_on_delete = false"):
        await PostgresCdcSource().initialize(config)
