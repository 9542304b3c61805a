"""End to end through the embedded broker: real delta-rs tables, real sink processes, S3 via moto."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from danube_connect_core.testing import (
    ConnectorProcess,
    consume,
    make_config,
    produce,
    start_runtime,
)
from danube_connect_core.testing.toml_writer import write_connector_toml
from danube_connect_core.testing.waits import start_ready, wait_for_status
from danube_sink_deltalake.connector import DeltaLakeSink
from danube_sink_deltalake.settings import DeltaLakeSettings
from danube_sink_deltalake.testing import moto_s3
from deltalake import DeltaTable

from .deltalake_helpers import COLUMNS, TOPIC, payment

N = 5000
PARTITIONS = 4


def config_toml(tmp_path: Path, url: str, name: str, table: Path) -> Path:
    columns = [{"nullable": True, **c} for c in COLUMNS]
    mapping = {"topic": TOPIC, "subscription": "delta-e2e", "table": table.name, "include_metadata": True}
    return write_connector_toml(
        tmp_path / f"{name}.toml",
        url,
        name,
        retry={"max_retries": 5, "retry_backoff_ms": 50, "max_backoff_ms": 500},
        processing=dict(batch_size=1000, batch_timeout_ms=2000, batch_idle_ms=100, max_unacked_messages=250),
        deltalake={"table_root": table.parent, "topic_mappings": [{**mapping, "columns": columns}]},
    )


def table_count(table: Path) -> int:
    if not (table / "_delta_log").exists():
        return 0
    return int(DeltaTable(str(table)).count())


def backlog(broker: Any, subscription: str) -> int:
    return sum(v for (_, sub), v in broker.core.snapshot().backlog.items() if sub == subscription)


async def test_5000_records_on_4_partitions_survive_sigkill(broker_factory: Any, tmp_path: Path) -> None:
    broker = await broker_factory(max_unacked_messages=250, ack_timeout_ms=30_000)
    await produce(broker.url, TOPIC, [], partitions=PARTITIONS)
    table = tmp_path / "lake" / "payments"
    config = config_toml(tmp_path, broker.url, "delta-e2e", table)
    first = ConnectorProcess("delta-lake", config)
    second = ConnectorProcess("delta-lake", config)
    try:
        await start_ready(first)
        producing = asyncio.create_task(
            produce(broker.url, TOPIC, [payment(i) for i in range(N)], partitions=PARTITIONS)
        )
        async with asyncio.timeout(120):
            while (
                await asyncio.to_thread(table_count, table) < N // 4
            ):  # mid-stream: some batches committed, more to come
                assert first.proc is not None and first.proc.poll() is None, first.log_tail()
                await asyncio.sleep(0.2)
        first.kill()  # SIGKILL: whatever was committed but not acked is redelivered
        killed_at = table_count(table)
        await producing
        assert killed_at < N
        await start_ready(second)
        async with asyncio.timeout(120):
            while await asyncio.to_thread(table_count, table) < N or backlog(broker, "delta-e2e") > 0:
                assert second.proc is not None and second.proc.poll() is None, second.log_tail()
                await asyncio.sleep(0.2)
        second.signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait) == 0, second.log_tail()
    finally:
        first.kill()
        second.kill()
    rows = DeltaTable(str(table)).to_pyarrow_table().to_pylist()
    assert len(rows) == N
    assert sorted(r["id"] for r in rows) == list(range(N))
    for r in rows:
        expected = payment(r["id"])
        assert (r["name"], r["amount"], r["region"]) == (
            expected["name"],
            expected["amount"],
            expected["meta"]["region"],
        )
    assert len({(r["_danube_partition"], r["_danube_offset"]) for r in rows}) == N
    assert {r["_danube_partition"] for r in rows} == set(range(PARTITIONS))


@pytest.fixture
def s3_env() -> Iterator[dict[str, str]]:
    with moto_s3("lake") as env:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


async def test_s3_table_and_dead_letter(broker_factory: Any, s3_env: dict[str, str]) -> None:
    broker = await broker_factory(max_unacked_messages=100)
    await produce(broker.url, TOPIC, [], partitions=2)
    settings = DeltaLakeSettings.model_validate(
        {
            "table_root": "s3://lake/tables",
            "topic_mappings": [
                {"topic": TOPIC, "subscription": "s3-sink", "table": "payments", "columns": COLUMNS}
            ],
        }
    )
    config = make_config(
        broker.url,
        "delta-s3",
        settings,
        processing={"batch_size": 200, "batch_timeout_ms": 5000, "max_unacked_messages": 100},
        retry={"max_retries": 3, "retry_backoff_ms": 20, "max_backoff_ms": 100},
    )
    running = await start_runtime(DeltaLakeSink(), config)
    try:
        await wait_for_status(
            running.port, within=60
        )  # subscribed: a new subscription starts at the end of the topic
        await produce(broker.url, "/default/delta-s3-dlq", [])
        await consume(broker.url, "/default/delta-s3-dlq", "inspect", 0)  # subscribe before anything arrives
        payloads: list[Any] = [payment(i) for i in range(150)]
        payloads[42] = {"id": "forty-two", "name": "bad"}
        await produce(broker.url, TOPIC, payloads, partitions=2)
        dlq = await consume(broker.url, "/default/delta-s3-dlq", "inspect", 1, within=60)
        opts = dict(s3_env)
        async with asyncio.timeout(60):
            while True:
                if DeltaTable.is_deltatable("s3://lake/tables/payments", storage_options=opts):
                    dt = DeltaTable("s3://lake/tables/payments", storage_options=opts)
                    if dt.count() >= 149:
                        break
                await asyncio.sleep(0.1)
        assert await running.stop() == 0
    finally:
        if not running.task.done():
            await running.stop()
    assert "expected an integer" in dlq[0].attributes["error.reason"]
    assert orjson.loads(dlq[0].payload) == payloads[42]
    ids = sorted(r["id"] for r in dt.to_pyarrow_table().to_pylist())
    assert ids == [i for i in range(150) if i != 42]
