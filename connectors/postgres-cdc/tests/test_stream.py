"""End to end: real PostgreSQL (wal2json and pgoutput) -> connector runtime -> embedded broker -> consumer."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from danube_connect_core.testing import make_config, start_runtime
from danube_source_postgres_cdc import PostgresCdcSource

from .cdc_helpers import Collector, settings, wait_ready

pytestmark = pytest.mark.asyncio(loop_scope="function")

SCHEMA = """
CREATE TABLE accounts (id int PRIMARY KEY, name text, balance numeric(12,2), updated timestamptz,
                       meta jsonb, tags text[], raw bytea, ratio float8, active bool);
CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b));
"""


async def _workload(conn: Any) -> dict[str, list[tuple[str, Any]]]:
    """300 row changes in several transactions; returns the expected (op, key) per table, in order."""
    expected: dict[str, list[tuple[str, Any]]] = {"accounts": [], "pairs": []}
    # one multi-row transaction: 50 inserts in each table
    async with conn.transaction():
        for i in range(50):
            await conn.execute(
                "INSERT INTO accounts VALUES ($1, $2, $3::numeric, '2024-05-01 12:00:00.5+02', $4::jsonb,"
                " $5, $6, 0.25, true)",
                i, f"n{i}", "10.10", '{"k": [1, 2]}', ["a", None, "c d"], b"\x00\xff",
            )  # fmt: skip
            await conn.execute("INSERT INTO pairs VALUES ($1, $2, 0)", i % 5, f"b{i}")
            expected["accounts"].append(("c", i))
            expected["pairs"].append(("c", [i % 5, f"b{i}"]))
    # 100 single-statement transactions: updates
    for i in range(50):
        await conn.execute(
            "UPDATE accounts SET balance = balance + 1.01, name = $2 WHERE id = $1", i, f"u{i}"
        )
        expected["accounts"].append(("u", i))
        await conn.execute("UPDATE pairs SET v = v + 1 WHERE a = $1 AND b = $2", i % 5, f"b{i}")
        expected["pairs"].append(("u", [i % 5, f"b{i}"]))
    # 50 deletes in 5 transactions of 10
    for start in range(0, 50, 10):
        async with conn.transaction():
            for i in range(start, start + 5):
                await conn.execute("DELETE FROM accounts WHERE id = $1", i)
                expected["accounts"].append(("d", i))
                await conn.execute("DELETE FROM pairs WHERE a = $1 AND b = $2", i % 5, f"b{i}")
                expected["pairs"].append(("d", [i % 5, f"b{i}"]))
    assert sum(len(v) for v in expected.values()) == 300 - 50  # 250 so far
    # 50 more: inserts into pairs, committed in one transaction, then updated in a second one
    async with conn.transaction():
        for i in range(25):
            await conn.execute("INSERT INTO pairs VALUES (100, $1, 1)", f"x{i}")
            expected["pairs"].append(("c", [100, f"x{i}"]))
    await conn.execute("UPDATE pairs SET v = 2 WHERE a = 100")
    expected["pairs"].extend(("u", [100, f"x{i}"]) for i in range(25))
    return expected


def _key(table: str, row: dict[str, Any]) -> Any:
    return row["id"] if table == "accounts" else [row["a"], row["b"]]


@pytest.mark.parametrize("plugin", ["wal2json", "pgoutput"])
async def test_300_changes_in_commit_order(pg_db: Any, broker: Any, plugin: str) -> None:
    conn = await pg_db.connect()
    await conn.execute(SCHEMA)
    s = settings(
        pg_db.dsn,
        [
            {"table": "public.accounts", "danube_topic": "/default/accounts"},
            {"table": "pairs", "danube_topic": "/default/pairs", "partitions": 3},
        ],
        plugin=plugin,
        slot_name=f"s_{plugin}",
    )
    collector = await Collector(broker.url, {"/default/accounts": None, "/default/pairs": 3}).start()
    running = await start_runtime(PostgresCdcSource(), make_config(broker.url, f"cdc-{plugin}", s))
    try:
        await wait_ready(running.port)
        expected = await _workload(conn)
        try:
            events = await collector.wait_for(300, within=30)
        except TimeoutError:
            raise AssertionError(f"received {len(collector.events)}") from None
        await collector.settle(0.5)
        assert len(events) == 300
        by_table: dict[str, list[dict[str, Any]]] = {"accounts": [], "pairs": []}
        for e in events:
            by_table[e["source"]["table"]].append(e)
        for table, exp in expected.items():
            got = by_table[table]
            if table == "accounts":  # one partition: the exact commit order
                assert [(e["op"], _key(table, e["after"] or e["before"])) for e in got] == exp
                lsns = [e["source"]["lsn"] for e in got]
                assert lsns == sorted(lsns)
            else:  # three partitions: commit order per key (= per partition)
                for key in {str(k) for _, k in exp}:
                    want = [op for op, k in exp if str(k) == key]
                    have = [e["op"] for e in got if str(_key(table, e["after"] or e["before"])) == key]
                    assert have == want, key
        first = by_table["accounts"][0]
        assert first["before"] is None and first["op"] == "c"
        assert first["after"] == {
            "id": 0,
            "name": "n0",
            "balance": "10.10",
            "updated": "2024-05-01T10:00:00.5+00:00",
            "meta": {"k": [1, 2]},
            "tags": ["a", None, "c d"],
            "raw": base64.b64encode(b"\x00\xff").decode(),
            "ratio": 0.25,
            "active": True,
        }
        assert first["_key"] == "0"
        assert first["source"]["db"] == pg_db.name and first["source"]["schema"] == "public"
        assert first["source"]["snapshot"] is False and isinstance(first["source"]["txId"], int)
        update = next(e for e in by_table["accounts"] if e["op"] == "u")
        assert update["after"]["balance"] == "11.11" and update["after"]["name"] == "u0"
        deleted = next(e for e in by_table["accounts"] if e["op"] == "d")
        assert deleted["after"] is None and deleted["before"]["id"] == 0
        pair_delete = next(e for e in by_table["pairs"] if e["op"] == "d" and e["_key"] == '[0,"b0"]')
        assert pair_delete["before"] == {"a": 0, "b": "b0"}  # REPLICA IDENTITY DEFAULT: the key columns
        # the multi-row transaction: one txId for its 100 inserts, in both tables
        inserts = by_table["accounts"][:50] + [e for e in by_table["pairs"] if e["op"] == "c"][:1]
        assert len({e["source"]["txId"] for e in inserts}) == 1
    finally:
        assert await running.stop() == 0
        await collector.stop()
        await conn.close()
    # everything acknowledged -> the slot was advanced past the last transaction
    check = await pg_db.connect()
    try:
        left = await check.fetchval(
            "SELECT count(*) FROM pg_logical_slot_peek_changes($1, NULL, NULL, 'format-version', '2')"
            if plugin == "wal2json"
            else "SELECT count(*) FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,"
            " 'proto_version', '1', 'publication_names', 'danube_cdc')",
            f"s_{plugin}",
        )
        # only non-captured work (the state table, heartbeats) may remain
        assert left <= 6
    finally:
        await check.close()


async def test_changes_of_one_row_keep_commit_order_with_a_wide_window(pg_db: Any, broker: Any) -> None:
    """max_in_flight = 16 on one partition: several changes are published at once, but the ordering key
    (table + primary key) holds each row's next change until its previous one is acknowledged."""
    conn = await pg_db.connect()
    await conn.execute("CREATE TABLE counters (id int PRIMARY KEY, n int)")
    s = settings(
        pg_db.dsn,
        [{"table": "counters", "danube_topic": "/default/counters"}],
        max_in_flight=16,
        slot_name="s_window",
    )
    collector = await Collector(broker.url, {"/default/counters": None}).start()
    running = await start_runtime(PostgresCdcSource(), make_config(broker.url, "cdc-window", s))
    try:
        await wait_ready(running.port)
        async with conn.transaction():
            await conn.executemany("INSERT INTO counters VALUES ($1, 0)", [(i,) for i in range(4)])
        for n in range(1, 41):  # one transaction per round: each updates the 4 rows to n
            async with conn.transaction():
                await conn.execute("UPDATE counters SET n = $1", n)
        events = await collector.wait_for(4 + 4 * 40, within=60)
        await collector.settle(0.5)
        assert len(events) == 164
        for i in range(4):
            values = [e["after"]["n"] for e in events if e["after"]["id"] == i]
            assert values == list(range(41)), i
    finally:
        assert await running.stop() == 0
        await collector.stop()
        await conn.close()
