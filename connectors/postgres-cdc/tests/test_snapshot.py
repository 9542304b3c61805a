"""snapshot_mode: initial on 10,000 existing rows, then live changes; initial does not repeat; never skips."""

from __future__ import annotations

from typing import Any

from danube_connect_core.testing import make_config, start_runtime
from danube_source_postgres_cdc import PostgresCdcSource

from .cdc_helpers import Collector, settings, wait_ready


async def _run(
    pg_db: Any, url: str, topic: str, mode: str, expect: int, delete_id: int = 2
) -> list[dict[str, Any]]:
    s = settings(
        pg_db.dsn,
        [{"table": "items", "danube_topic": topic, "partitions": 2}],
        snapshot_mode=mode,
        max_in_flight=16,
    )
    collector = await Collector(url, {topic: 2}).start()
    running = await start_runtime(PostgresCdcSource(), make_config(url, "cdc-snap", s))
    conn = await pg_db.connect()
    try:
        await wait_ready(running.port)
        try:
            await collector.wait_for(expect - 3, within=90)
        except TimeoutError:
            raise AssertionError(f"received {len(collector.events)}") from None
        async with conn.transaction():  # live changes after the snapshot
            await conn.execute("INSERT INTO items VALUES (100000, 'live')")
            await conn.execute("UPDATE items SET v = 'changed' WHERE id = 1")
            await conn.execute("DELETE FROM items WHERE id = $1", delete_id)
        events = await collector.wait_for(expect, within=60)
        await collector.settle(0.5)
        return list(events)
    finally:
        assert await running.stop() == 0
        await collector.stop()
        await conn.close()


async def test_initial_snapshot_then_stream(pg_db: Any, broker: Any) -> None:
    conn = await pg_db.connect()
    await conn.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
    await conn.execute("INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 10000) g")
    await conn.close()

    events = await _run(pg_db, broker.url, "/default/items", "initial", 10_003)
    assert len(events) == 10_003
    reads = [e for e in events if e["op"] == "r"]
    assert len(reads) == 10_000
    assert {e["after"]["id"] for e in reads} == set(range(1, 10_001))
    assert all(e["source"]["snapshot"] is True and e["before"] is None for e in reads)
    live = [e for e in events if e["op"] != "r"]
    # keys hash to two partitions, and order holds per partition only, so the three live changes
    # (different keys) may interleave in any order across partitions
    assert sorted((e["op"], (e["after"] or e["before"])["id"]) for e in live) == [
        ("c", 100000),
        ("d", 2),
        ("u", 1),
    ]
    # per key, the snapshot row comes before the live change
    order = {(e["op"], (e["after"] or e["before"])["id"]): i for i, e in enumerate(events)}
    assert order[("r", 1)] < order[("u", 1)] and order[("r", 2)] < order[("d", 2)]

    # a second start with "initial": the snapshot completed before, so only the live changes arrive
    conn = await pg_db.connect()
    await conn.execute("DELETE FROM items WHERE id = 100000")
    await conn.execute("UPDATE items SET v = 'again' WHERE id = 3")
    await conn.close()
    again = await _run(pg_db, broker.url, "/default/items2", "initial", 5, delete_id=4)
    assert sorted(e["op"] for e in again) == ["c", "d", "d", "u", "u"]
    assert not [e for e in again if e["op"] == "r"]
