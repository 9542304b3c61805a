"""Benchmark of the ClickHouse sink (not a test: asserts nothing, prints ratios measured in one run).

Against ClickHouse in-process (chdb, through clickhouse-connect's ``chdb://`` DSN), payment rows into a
MergeTree table with the metadata columns and ``non_replicated_deduplication_window``, for each batch size:

1. rows/s through SinkRuntime (broker -> consume, decode, batch -> ClickHouseSink.write (value
   conversion, position check, one insert with its de-duplication token) -> ack), vs the floor: a direct
   ``client.insert`` of the same rows (built beforehand, metadata included, no token) in batches of the
   same size into the same engine; and vs our raw consumer (receive + ack only: what the broker allows);
2. the sink's write path alone: write vs that floor.
Floor and write-path numbers are medians of 3 interleaved rounds.

The broker runs in its own process (console script, max_unacked_messages 1000 so batches fill).
Results: bench/results/clickhouse.json.
Usage: uv run python bench/clickhouse_bench.py [--messages N] [--batch B ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
from danube_connect_core.client import DanubeClient
from danube_connect_core.records import SinkRecord
from danube_connect_core.sink_batch import SinkBatch
from danube_connect_core.sink_runtime import SinkRuntime
from danube_connect_core.testing import make_config, write_batch
from danube_embedded_broker.testing import BrokerProcess
from danube_sink_clickhouse.connector import ClickHouseSink
from danube_sink_clickhouse.rows import RowBuilder
from danube_sink_clickhouse.settings import ClickHouseSettings
from danube_sink_clickhouse.table_schema import describe_table
from result_files import result_path

REPO = Path(__file__).resolve().parents[1]
EVENTS = ("payment.succeeded", "payment.failed", "payment.refunded", "payment.canceled")
DDL = """CREATE TABLE bench.{table} (
    id Int64, event LowCardinality(String), amount Int64, currency LowCardinality(String),
    timestamp DateTime64(3, 'UTC'),
    _danube_topic LowCardinality(String), _danube_partition Int32, _danube_offset Int64,
    _danube_message_id String, _danube_publish_time DateTime64(6, 'UTC'), _danube_key String,
    _danube_attributes String
) ENGINE = MergeTree ORDER BY (_danube_topic, _danube_partition, _danube_offset)
SETTINGS non_replicated_deduplication_window = 1000"""


def payment(i: int) -> dict[str, Any]:
    return {"id": i, "event": EVENTS[i % 4], "amount": i, "currency": "USD", "timestamp": 1705004567 + i}


def records(n: int, topic: str) -> list[SinkRecord]:
    return [SinkRecord(payment(i), topic, i % 4, i // 4, 0, "bench", {}, None, None) for i in range(n)]


def settings(dsn: str, topic: str, batch: int, table: str) -> ClickHouseSettings:
    return ClickHouseSettings.model_validate(
        {"url": dsn, "database": "bench", "topic_mappings": [
            {"topic": topic, "subscription": "bench", "table": table, "batch_size": batch,
             "include_metadata": True}
        ]}
    )  # fmt: skip


def create(client: Any, table: str) -> None:
    client.command(DDL.format(table=table))


def direct(client: Any, recs: list[SinkRecord], batch: int, table: str) -> float:
    """The floor: clickhouse-connect alone, the same rows built beforehand, one insert per batch."""
    create(client, table)
    schema = describe_table(client, "bench", table)
    rows = RowBuilder(schema, include_metadata=True, field_paths={}, reject_unknown=False).build(recs).rows
    names = schema.names()
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        client.insert(table, rows[i : i + batch], column_names=names, database="bench")
    return len(rows) / (time.perf_counter() - start)


async def write_path(client: Any, dsn: str, recs: list[SinkRecord], batch: int, table: str) -> float:
    create(client, table)
    sink = ClickHouseSink()
    config = make_config("http://127.0.0.1:1", "bench", settings(dsn, recs[0].topic, batch, table))
    await sink.initialize(config)
    start = time.perf_counter()
    for i in range(0, len(recs), batch):
        await write_batch(sink, recs[i : i + batch])
    elapsed = time.perf_counter() - start
    await sink.shutdown()
    return len(recs) / elapsed


class CountingSink(ClickHouseSink):
    """The real sink, plus a count of written rows (so the benchmark need not read the table)."""

    def __init__(self, target: int) -> None:
        super().__init__()
        self.written = 0
        self.target = target
        self.done = asyncio.Event()

    async def write(self, batch: SinkBatch[Any]) -> None:
        await super().write(batch)
        self.written += len(batch.records)
        if self.written >= self.target:
            self.done.set()


async def fill(broker_url: str, topic: str, subscription: str, n: int) -> None:
    client = DanubeClient(broker_url)
    producer = await client.create_producer(topic, "bench", partitions=4, reliable=True, max_in_flight=64)
    consumer = await client.subscribe(topic, subscription, consumer_name="bench-setup")
    await consumer.close()  # the subscription exists before the messages, so it receives all of them
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            await producer.send(orjson.dumps(payment(i)))

    await asyncio.gather(*(one(i) for i in range(n)))
    await producer.close()
    await client.close()


async def raw_consume(broker_url: str, topic: str, n: int) -> float:
    await fill(broker_url, topic, "raw", n)
    client = DanubeClient(broker_url)
    consumer = await client.subscribe(topic, "raw", consumer_name="raw")
    start = time.perf_counter()
    pending: set[asyncio.Task[Any]] = set()
    for _ in range(n):
        msg = await consumer.receive()
        t = asyncio.create_task(consumer.ack(msg))
        pending.add(t)
        t.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    elapsed = time.perf_counter() - start
    await consumer.close()
    await client.close()
    return n / elapsed


async def through_runtime(
    broker_url: str, client: Any, dsn: str, topic: str, n: int, batch: int, table: str
) -> float:
    create(client, table)
    await fill(broker_url, topic, "bench", n)
    config = make_config(
        broker_url,
        "bench-clickhouse",
        settings(dsn, topic, batch, table),
        processing={
            "metrics_port": 0,
            "batch_size": batch,
            "max_unacked_messages": 1000,
            "batch_idle_ms": 20,
        },
    )
    sink = CountingSink(n)
    runtime = SinkRuntime(sink, config)
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(runtime.run(stop))
    await asyncio.wait_for(sink.done.wait(), 900)
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return n / elapsed


async def main(n: int, batches: list[int]) -> None:
    results: dict[str, Any] = {}
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        dsn = f"chdb://{tmp}/chdb"
        client = clickhouse_connect.get_client(dsn=dsn)
        client.command("CREATE DATABASE bench")
        broker = BrokerProcess(Path(tmp) / "broker", args=["--max-unacked", "1000"])
        broker_url = broker.start()
        try:
            raw = await raw_consume(broker_url, "/default/bench-raw", n)
            for b in batches:
                recs = records(n, f"/default/bench-wp-{b}")
                floors, paths = [], []
                for k in range(3):  # interleaved rounds on fresh tables: load changes hit both alike
                    floors.append(await asyncio.to_thread(direct, client, recs, b, f"direct_{b}_{k}"))
                    paths.append(await write_path(client, dsn, recs, b, f"sink_{b}_{k}"))
                floor, path = statistics.median(floors), statistics.median(paths)
                rt = await through_runtime(broker_url, client, dsn, f"/default/bench-rt-{b}", n, b, f"rt_{b}")
                results[str(b)] = {
                    "direct_rows_per_s": floor,
                    "process_batch_rows_per_s": path,
                    "runtime_rows_per_s": rt,
                    "runtime_over_direct": rt / floor,
                    "runtime_over_raw_consumer": rt / raw,
                    "process_batch_over_direct": path / floor,
                }
        finally:
            broker.stop()
    print(f"ClickHouse sink, {n} payment rows, chdb; raw consumer receive+ack: {raw:.0f} msg/s")
    for size, r in results.items():
        print(f"batch {size}:")
        print(f"  direct client.insert (floor)     {r['direct_rows_per_s']:9.0f} rows/s")
        print(
            f"  SinkRuntime end to end           {r['runtime_rows_per_s']:9.0f} rows/s"
            f"   / direct: {r['runtime_over_direct']:.4f}"
            f"   / raw consumer: {r['runtime_over_raw_consumer']:.2f}"
        )
        print(
            f"  write (write path)               {r['process_batch_rows_per_s']:9.0f} rows/s"
            f"   / direct: {r['process_batch_over_direct']:.2f}"
        )
    load_end = os.getloadavg()[0]
    print(f"(load average {load_start:.1f} at start, {load_end:.1f} at the end, {os.cpu_count()} cores)")
    out = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "load_average": [load_start, load_end],
        "messages": n,
        "raw_consumer_per_s": raw,
        "by_batch_size": results,
    }
    result_file = result_path("clickhouse.json")
    result_file.parent.mkdir(exist_ok=True)
    result_file.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default: 500 and 2000)")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.batch or [500, 2000]))
