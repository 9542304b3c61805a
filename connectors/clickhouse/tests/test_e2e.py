"""End to end through the embedded broker: the sink as a real process on chdb, SIGKILL and restart, and a
dead-lettered record beside healthy ones (in-process runtime)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from danube_connect_core.testing import (
    ConnectorProcess,
    consume,
    http_get,
    make_config,
    produce,
    start_runtime,
)
from danube_connect_core.testing.toml_writer import write_connector_toml
from danube_connect_core.testing.waits import start_ready, wait_for_status
from danube_sink_clickhouse.connector import ClickHouseSink

from .clickhouse_helpers import TOPIC, event, require_chdb, settings, table_ddl

N = 5000
PARTITIONS = 4

_QUERY = """
import json, sys, clickhouse_connect
c = clickhouse_connect.get_client(dsn=sys.argv[1])
out = []
for sql in json.loads(sys.argv[2]):
    select = sql.lstrip().upper().startswith("SELECT")
    out.append([list(r) for r in c.query(sql).result_rows] if select else c.command(sql))
print(json.dumps(out, default=str))
"""


def chdb_run(path: Path, *sql: str) -> list[Any]:
    """Runs statements on a chdb directory in a separate process (chdb allows one path per process)."""
    done = subprocess.run(
        [sys.executable, "-c", _QUERY, f"chdb://{path}", json.dumps(sql)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: list[Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def backlog(broker: Any, subscription: str) -> int:
    return sum(v for (_, sub), v in broker.core.snapshot().backlog.items() if sub == subscription)


def config_toml(tmp_path: Path, url: str, dsn: str) -> Path:
    return write_connector_toml(
        tmp_path / "clickhouse.toml",
        url,
        "ch-e2e",
        retry={"max_retries": 5, "retry_backoff_ms": 50, "max_backoff_ms": 500},
        processing=dict(batch_size=1000, batch_timeout_ms=2000, batch_idle_ms=100, max_unacked_messages=250),
        clickhouse={
            "url": dsn,
            "database": "lake",
            "topic_mappings": [
                {"topic": TOPIC, "subscription": "ch-e2e", "table": "events", "include_metadata": True}
            ],
        },
    )


async def test_5000_records_on_4_partitions_survive_sigkill(broker_factory: Any, tmp_path: Path) -> None:
    require_chdb()
    data = tmp_path / "chdb"
    chdb_run(data, "CREATE DATABASE lake", table_ddl("lake"))
    broker = await broker_factory(max_unacked_messages=250, ack_timeout_ms=30_000)
    await produce(broker.url, TOPIC, [], partitions=PARTITIONS)
    config = config_toml(tmp_path, broker.url, f"chdb://{data}")
    first = ConnectorProcess("clickhouse", config)
    second = ConnectorProcess("clickhouse", config)
    try:
        port = await start_ready(first, within=90)
        producing = asyncio.create_task(
            produce(broker.url, TOPIC, [event(i) for i in range(N)], partitions=PARTITIONS)
        )
        async with asyncio.timeout(120):
            while True:  # mid-stream: some batches inserted, more to come
                _, text = await asyncio.to_thread(http_get, port, "/metrics")
                if metric(text, "danube_connector_messages_sent_total") >= N // 4:
                    break
                await asyncio.sleep(0.1)
        first.kill()  # SIGKILL: whatever was inserted but not acked is redelivered
        await producing
        await start_ready(second, within=90)
        async with asyncio.timeout(120):
            while backlog(broker, "ch-e2e") > 0:
                assert second.proc is not None and second.proc.poll() is None, second.log_tail()
                await asyncio.sleep(0.2)
        second.signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait) == 0, second.log_tail()
    finally:
        first.kill()
        second.kill()
    total, distinct, rows = chdb_run(
        data,
        "SELECT count() FROM lake.events",
        "SELECT uniqExact(_danube_partition, _danube_offset) FROM lake.events",
        "SELECT id, name, amount, region, tags FROM lake.events ORDER BY id",
    )
    assert total == [[N]]
    assert distinct == [[N]]
    assert [r[0] for r in rows] == list(range(N))
    for r in rows:
        e = event(r[0])
        assert r[1:] == [e["name"], e["amount"], e["region"], e["tags"]]


async def test_refused_record_is_dead_lettered_rest_inserted(
    broker_factory: Any, ch: tuple[Any, str, str]
) -> None:
    client, dsn, db = ch
    client.command(table_ddl(db, extra=",\n    CONSTRAINT positive CHECK amount >= 0"))
    broker = await broker_factory(max_unacked_messages=100)
    await produce(broker.url, TOPIC, [], partitions=2)
    config = make_config(
        broker.url,
        "ch-dlq",
        settings(dsn, db),
        processing={"batch_size": 200, "batch_timeout_ms": 5000, "max_unacked_messages": 100},
        retry={"max_retries": 3, "retry_backoff_ms": 20, "max_backoff_ms": 100},
    )
    running = await start_runtime(ClickHouseSink(), config)
    try:
        await wait_for_status(
            running.port, within=60
        )  # subscribed: a new subscription starts at the end of the topic
        await produce(broker.url, "/default/ch-dlq-dlq", [])
        await consume(broker.url, "/default/ch-dlq-dlq", "inspect", 0)
        payloads = [event(i) for i in range(150)]
        payloads[42] = {**event(42), "amount": -5}  # only the table's CHECK constraint refuses it
        payloads[77] = {**event(77), "id": None}
        await produce(broker.url, TOPIC, payloads, partitions=2)
        dlq = await consume(broker.url, "/default/ch-dlq-dlq", "inspect", 2, within=60)
        async with asyncio.timeout(60):
            while client.query(f"SELECT count() FROM {db}.events").result_rows[0][0] < 148:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        assert await running.stop() == 0
    finally:
        if not running.task.done():
            await running.stop()
    by_id = {orjson.loads(m.payload)["amount"]: m.attributes["error.reason"] for m in dlq}
    assert "refused" in by_id[-5]
    assert "is null" in by_id[77 / 4]
    ids = [r[0] for r in client.query(f"SELECT id FROM {db}.events ORDER BY id").result_rows]
    assert ids == [i for i in range(150) if i not in (42, 77)]
