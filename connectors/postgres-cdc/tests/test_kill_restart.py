"""The connector as a real process: SIGKILL mid-stream and restart loses nothing; SIGTERM restarts
deliver nothing twice."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from danube_connect_core.testing import ConnectorProcess
from danube_connect_core.testing.toml_writer import write_connector_toml

from .cdc_helpers import Collector, wait_ready

TOPIC = "/default/orders"
MAX_CHANGES = 50


def _config(tmp_path: Path, url: str, dsn: str) -> Path:
    return write_connector_toml(
        tmp_path / "cdc.toml",
        url,
        "cdc-kill",
        processing={"poll_interval_ms": 20, "log_level": "info"},
        postgres={
            "dsn": dsn,
            "max_changes_per_poll": MAX_CHANGES,
            "poll_interval_ms": 20,
            "table_mappings": [{"table": "public.orders", "danube_topic": TOPIC}],
        },
    )


async def _start(cfg: Path) -> ConnectorProcess:
    proc = ConnectorProcess("postgres-cdc", cfg, env={"LOG_FORMAT": "json"}).start()
    port = await asyncio.to_thread(proc.metrics_port)
    await wait_ready(port)
    return proc


async def _write(conn: Any, first_txn: int, txns: int, per_txn: int = 5) -> None:
    for t in range(first_txn, first_txn + txns):
        async with conn.transaction():
            for i in range(per_txn):
                await conn.execute("INSERT INTO orders VALUES ($1, $2)", t * 100 + i, t)


async def test_sigkill_mid_stream_then_restart(pg_db: Any, broker: Any, tmp_path: Path) -> None:
    conn = await pg_db.connect()
    await conn.execute("CREATE TABLE orders (id int PRIMARY KEY, txn int)")
    cfg = _config(tmp_path, broker.url, pg_db.dsn)
    collector = await Collector(broker.url, {TOPIC: None}).start()
    proc = await _start(cfg)
    try:
        writer = asyncio.create_task(_write(conn, 0, 60))  # 300 inserts, 60 transactions
        await collector.wait_for(40, within=60)
        proc.kill()  # SIGKILL while changes are still being written and published
        killed_at = len(collector.events)
        await writer
        proc = await _start(cfg)
        await collector.wait_for(300, within=120)
        await collector.settle(1.0)
        ids = Counter(e["after"]["id"] for e in collector.events)
        assert set(ids) == {t * 100 + i for t in range(60) for i in range(5)}  # none lost
        duplicates = sum(n - 1 for n in ids.values())
        # Only what was acknowledged by Danube but not yet committed to the slot at the kill (at most
        # one poll's worth) can come again, as whole transactions.
        assert duplicates <= MAX_CHANGES, (duplicates, killed_at)
        print(f"SIGKILL after {killed_at} events: {duplicates} change(s) delivered twice")

        # SIGTERM drains and commits: a graceful restart delivers nothing twice
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0
        before = len(collector.events)
        await _write(conn, 60, 20)
        proc = await _start(cfg)
        await collector.wait_for(before + 100, within=60)
        await collector.settle(1.0)
        tail = Counter(e["after"]["id"] for e in collector.events[before:])
        assert len(tail) == 100 and set(tail.values()) == {1}
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0
    finally:
        proc.kill()
        await collector.stop()
        await conn.close()
