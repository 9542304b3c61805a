"""Benchmark of the SurrealDB sink (not a test: asserts nothing, prints ratios measured in one run).

Against SurrealDB's embedded engine on a surrealkv store in a temp dir (no server binary here), with
payment rows like the example's, for each batch size:

1. P3 end to end: rows/s through SinkRuntime (broker -> consume, decode, batch -> the sink's write -> ack;
   the clock stops when every message is acked, as the floor's)
   vs the raw-stub pipeline on the same broker (``raw_stub.drain``: generated gRPC stubs, batches of the
   same size, each inserted directly with the SDK by this script, then acked). Context: the runtime vs a
   direct SDK bulk insert of ready rows (the floor before 2026-12-04) and vs a bare consumer;
2. the sink's write path alone: its write on a ready batch (row building + the same statement) vs a direct
   SDK bulk insert (``INSERT IGNORE INTO t $rows``) of the same rows in batches of the same size;
3. the write path vs per-record writes (batches of one record: one statement each).
Medians of 3 interleaved rounds (the end-to-end pair alternates too).

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
import raw_stub
from danube_connect_core.client import DanubeClient
from danube_connect_core.records import SinkRecord
from danube_connect_core.sink_runtime import SinkRuntime
from danube_connect_core.testing import make_config
from danube_embedded_broker.testing import BrokerProcess
from danube_sink_surrealdb.connector import SurrealDbSink
from danube_sink_surrealdb.rows import to_row
from danube_sink_surrealdb.settings import SurrealDbSettings
from result_files import result_path
from sink_calls import counting, prepared_batch, write_prepared
from surrealdb import AsyncSurreal, RecordID

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


CountingSink = counting(SurrealDbSink)


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
    """The sink's write on ready batches (built as the runtime builds them, outside the clock)."""
    sink = await open_sink(url, batch, table)
    batches = [await prepared_batch(sink, recs[i : i + batch]) for i in range(0, len(recs), batch)]
    start = time.perf_counter()
    for b in batches:
        await write_prepared(sink, b)
    elapsed = time.perf_counter() - start
    await sink.shutdown()
    return len(recs) / elapsed


async def sink_per_record(url: str, recs: list[SinkRecord], table: str) -> float:
    """The same write, one record per batch (one statement and one commit per row)."""
    return await sink_batches(url, recs, 1, table)


async def raw_pipeline(broker_url: str, url: str, topic: str, n: int, batch: int, table: str) -> float:
    """P3's end-to-end floor: raw-stub consume, each batch inserted directly with the SDK (the decoded
    payloads, record ids from the message positions), then acked (see raw_stub.py)."""
    await fill(broker_url, topic, "floor", n)
    db: Any = AsyncSurreal(url)
    await db.connect()
    await db.use("default", "default")

    async def write(messages: Any) -> None:
        rows = []
        for m in messages:
            row = orjson.loads(m.payload)
            row["id"] = RecordID(table, f"{m.msg_id.topic_name}:{m.msg_id.topic_offset}")
            rows.append(row)
        await db.query(f"INSERT IGNORE INTO `{table}` $rows RETURN NONE", {"rows": rows})

    try:
        return await raw_stub.drain(  # cut as the runtime below: idle 20 ms, window 1000
            broker_url, topic, "floor", 4, n, batch, write, idle_s=0.02, max_age_s=1.0, window=1000
        )
    finally:
        await db.close()


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
    await raw_stub.runtime_settled(runtime, topic)  # the clock ends at the last ack, as the floor's
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
                pipes, rts = [], []
                for k in range(3):  # the end-to-end pair alternates as well
                    pipes.append(
                        await raw_pipeline(broker_url, url, f"/default/bench-fl-{b}-{k}", n, b, f"fl_{b}_{k}")
                    )
                    rts.append(
                        await through_runtime(
                            broker_url, url, f"/default/bench-rt-{b}-{k}", n, b, f"rt_{b}_{k}"
                        )
                    )
                floor, batched, per_record = median3(floors), median3(batcheds), median3(singles)
                pipe, rt = median3(pipes), median3(rts)
                results[str(b)] = {
                    "direct_sdk_rows_per_s": floor,
                    "write_path_rows_per_s": batched,
                    "write_path_over_direct": batched / floor,
                    "per_record_rows_per_s": per_record,
                    "write_path_over_per_record": batched / per_record,
                    "raw_pipeline_rows_per_s": pipe,
                    "runtime_rows_per_s": rt,
                    "runtime_over_raw_pipeline": rt / pipe,
                    "runtime_over_direct": rt / floor,
                    "runtime_over_raw_consumer": rt / raw,
                    "rounds": {
                        "direct": floors,
                        "write_path": batcheds,
                        "raw_pipeline": pipes,
                        "runtime": rts,
                    },
                }
        finally:
            broker.stop()
    print(f"SurrealDB sink, {n} payment rows, embedded surrealkv; raw consumer receive+ack: {raw:.0f} msg/s")
    for size, r in results.items():
        print(f"batch {size}:")
        print(f"  direct SDK bulk insert (floor)   {r['direct_sdk_rows_per_s']:9.0f} rows/s")
        print(
            f"  sink write path                  {r['write_path_rows_per_s']:9.0f} rows/s"
            f"   / direct: {r['write_path_over_direct']:.2f}"
        )
        print(
            f"  sink write, one record per batch {r['per_record_rows_per_s']:9.0f} rows/s"
            f"   batch / per record: {r['write_path_over_per_record']:.1f}x"
        )
        print(f"  raw-stub pipeline (floor)        {r['raw_pipeline_rows_per_s']:9.0f} rows/s")
        print(
            f"  SinkRuntime end to end           {r['runtime_rows_per_s']:9.0f} rows/s"
            f"   / raw pipeline: {r['runtime_over_raw_pipeline']:.2f}"
            f"   / direct: {r['runtime_over_direct']:.2f}"
            f"   / raw consumer: {r['runtime_over_raw_consumer']:.2f}"
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
