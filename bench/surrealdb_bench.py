"""Benchmark of the SurrealDB sink (not a test: asserts nothing, prints ratios measured in one run).

Against SurrealDB's embedded engine on a surrealkv store in a temp dir (no server binary here), with
payment rows like the example's, for each batch size:

1. rows/s through SinkRuntime (broker -> consume, decode, batch -> SurrealDbSink.write -> ack),
   vs the floor: a direct SDK bulk insert (``INSERT IGNORE INTO t $rows``) of the same rows in batches
   of the same size; and vs our raw consumer (receive + ack only: what the broker allows);
2. the sink's write path alone: write (row building + the same statement) vs that floor;
3. batched writes vs per-record writes (a batch of one per record: one statement each).
The direct and write-path numbers are medians of 3 interleaved rounds.

The broker runs in its own process (console script, max_unacked_messages 1000 so batches fill).
Results: bench/results/surrealdb.json. Usage: uv run python bench/surrealdb_bench.py [--messages N]
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

import orjson
from danube_connect_core.client import DanubeClient
from danube_connect_core.records import SinkRecord
from danube_connect_core.sink_batch import SinkBatch
from danube_connect_core.sink_runtime import SinkRuntime
from danube_connect_core.testing import make_config, write_batch
from danube_embedded_broker.testing import BrokerProcess
from danube_sink_surrealdb.connector import SurrealDbSink
from danube_sink_surrealdb.rows import to_row
from danube_sink_surrealdb.settings import SurrealDbSettings
from result_files import result_path
from surrealdb import AsyncSurreal

REPO = Path(__file__).resolve().parents[1]
EVENTS = ("payment.succeeded", "payment.failed", "payment.refunded", "payment.canceled")
TOPIC = "/default/payments"


def payment(i: int) -> dict[str, Any]:
    return {"event": EVENTS[i % 4], "amount": i, "currency": "USD", "timestamp": 1705004567 + i}


def records(n: int) -> list[SinkRecord]:
    """Records on the mapped topic (the sink finds a record's mapping by its topic)."""
    return [SinkRecord(payment(i), TOPIC, i % 4, i // 4, 0, "bench", {}, None, None) for i in range(n)]


def settings(url: str, batch: int, table: str = "payments") -> SurrealDbSettings:
    return SurrealDbSettings.model_validate(
        {"url": url, "topic_mappings": [
            {"topic": TOPIC, "subscription": "bench", "table": table, "batch_size": batch}
        ]}
    )  # fmt: skip


async def open_sink(url: str, batch: int, table: str) -> SurrealDbSink:
    sink = SurrealDbSink()
    await sink.initialize(make_config("http://127.0.0.1:1", "bench", settings(url, batch, table)))
    return sink


class CountingSink(SurrealDbSink):
    """The real sink, plus a count of written rows (so the benchmark need not query the table)."""

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


def median3(values: list[float]) -> float:
    return statistics.median(values)


async def direct_sdk(url: str, recs: list[SinkRecord], batch: int, table: str) -> float:
    """The floor: the SDK alone, rows prepared beforehand, one INSERT IGNORE per batch."""
    sink_settings = settings(url, batch, table)
    mapping = sink_settings.topic_mappings[0]
    rows = [to_row(r, mapping) for r in recs]
    db: Any = AsyncSurreal(url)
    await db.connect()
    await db.use("default", "default")
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        await db.query(f"INSERT IGNORE INTO `{table}` $rows RETURN NONE", {"rows": rows[i : i + batch]})
    elapsed = time.perf_counter() - start
    await db.close()
    return len(rows) / elapsed


async def sink_batches(url: str, recs: list[SinkRecord], batch: int, table: str) -> float:
    sink = await open_sink(url, batch, table)
    start = time.perf_counter()
    for i in range(0, len(recs), batch):
        await write_batch(sink, recs[i : i + batch])
    elapsed = time.perf_counter() - start
    await sink.shutdown()
    return len(recs) / elapsed


async def sink_per_record(url: str, recs: list[SinkRecord], table: str) -> float:
    sink = await open_sink(url, 1, table)
    start = time.perf_counter()
    for r in recs:
        await write_batch(sink, [r])
    elapsed = time.perf_counter() - start
    await sink.shutdown()
    return len(recs) / elapsed


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


async def through_runtime(broker_url: str, url: str, topic: str, n: int, batch: int, table: str) -> float:
    await fill(broker_url, topic, "bench", n)
    s = SurrealDbSettings.model_validate(
        {"url": url, "topic_mappings": [
            {"topic": topic, "subscription": "bench", "table": table, "batch_size": batch}
        ]}
    )  # fmt: skip
    config = make_config(
        broker_url,
        "bench-surrealdb",
        s,
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
    await asyncio.wait_for(sink.done.wait(), 600)
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return n / elapsed


async def main(n: int, batches: list[int]) -> None:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"surrealkv://{tmp}/surreal"
        broker = BrokerProcess(Path(tmp) / "broker", args=["--max-unacked", "1000"])
        broker_url = broker.start()
        try:
            raw = await raw_consume(broker_url, "/default/bench-raw", n)
            for b in batches:
                recs = records(n)
                # Three rounds on fresh tables, interleaved so that load changes hit every variant alike.
                floors, batcheds, singles = [], [], []
                for k in range(3):
                    floors.append(await direct_sdk(url, recs, b, f"direct_{b}_{k}"))
                    batcheds.append(await sink_batches(url, recs, b, f"sink_{b}_{k}"))
                    singles.append(await sink_per_record(url, recs[: min(n, 1000)], f"single_{b}_{k}"))
                floor, batched, per_record = median3(floors), median3(batcheds), median3(singles)
                rt = await through_runtime(broker_url, url, f"/default/bench-rt-{b}", n, b, f"rt_{b}")
                results[str(b)] = {
                    "direct_sdk_rows_per_s": floor,
                    "process_batch_rows_per_s": batched,
                    "per_record_rows_per_s": per_record,
                    "runtime_rows_per_s": rt,
                    "runtime_over_direct": rt / floor,
                    "runtime_over_raw_consumer": rt / raw,
                    "process_batch_over_direct": batched / floor,
                    "process_batch_over_per_record": batched / per_record,
                }
        finally:
            broker.stop()
    print(f"SurrealDB sink, {n} payment rows, embedded surrealkv; raw consumer receive+ack: {raw:.0f} msg/s")
    for size, r in results.items():
        print(f"batch {size}:")
        print(f"  direct SDK bulk insert (floor)   {r['direct_sdk_rows_per_s']:9.0f} rows/s")
        print(
            f"  SinkRuntime end to end           {r['runtime_rows_per_s']:9.0f} rows/s"
            f"   / direct: {r['runtime_over_direct']:.2f}"
            f"   / raw consumer: {r['runtime_over_raw_consumer']:.2f}"
        )
        print(
            f"  write (write path)               {r['process_batch_rows_per_s']:9.0f} rows/s"
            f"   / direct: {r['process_batch_over_direct']:.2f}"
        )
        print(
            f"  per record (batch of 1)            {r['per_record_rows_per_s']:9.0f} rows/s"
            f"   batched / per record: {r['process_batch_over_per_record']:.1f}x"
        )
    out = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "messages": n,
        "raw_consumer_per_s": raw,
        "by_batch_size": results,
    }
    path = result_path("surrealdb.json")
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default: 50 and 500)")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.batch or [50, 500]))
