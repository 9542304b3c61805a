"""Benchmark of the Delta Lake sink (not a test: asserts nothing, prints ratios measured in one run).

Against delta-rs on a local table in a temp dir, payment rows, for each batch size:

1. P3 end to end: rows/s through SinkRuntime (broker -> consume, decode, batch -> the sink's write (one
   commit with the per-partition app transactions) -> ack) vs the raw-stub pipeline on the same broker
   (``raw_stub.drain``: generated gRPC stubs, batches of the same size, each decoded and appended with
   ``write_deltalake`` by this script, then acked). Context rows: the runtime vs a direct append of ready
   Arrow tables (the floor before 2026-12-04) and vs a bare consumer (receive + ack only);
2. the sink's write path alone: its write on a ready batch (JSON -> columns, position check, commit) vs a
   direct ``write_deltalake`` append of the same rows (Arrow tables built beforehand), same batch size,
   the two alternating batch by batch on two fresh tables (the same number of commits into equally long
   logs); at least ``--write-batches`` batches per round (default 10), so the sink's one-time start
   (reading the recorded positions) does not weigh half of a round as it did with 2 batches of 2,000.
Medians of 3 rounds (the end-to-end pair alternates too).

The broker runs in its own process (console script, max_unacked_messages 1000 so batches fill).
Results: bench/results/deltalake.json.
Usage: uv run python bench/deltalake_bench.py [--messages N] [--batch B ...] [--write-batches W]
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
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import raw_stub
from danube_connect_core.client import DanubeClient
from danube_connect_core.records import SinkRecord
from danube_connect_core.sink_runtime import SinkRuntime
from danube_connect_core.testing import make_config
from danube_embedded_broker.testing import BrokerProcess
from danube_sink_deltalake.connector import DeltaLakeSink
from danube_sink_deltalake.settings import DeltaLakeSettings
from deltalake import DeltaTable, write_deltalake
from result_files import result_path
from sink_calls import counting, prepared_batch, write_prepared

REPO = Path(__file__).resolve().parents[1]
EVENTS = ("payment.succeeded", "payment.failed", "payment.refunded", "payment.canceled")
COLUMNS = [
    {"path": "$.id", "column": "id", "type": "int64", "nullable": False},
    {"path": "$.event", "column": "event", "type": "string"},
    {"path": "$.amount", "column": "amount", "type": "int64"},
    {"path": "$.currency", "column": "currency", "type": "string"},
    {"path": "$.timestamp", "column": "ts", "type": "timestamp"},
]


def payment(i: int) -> dict[str, Any]:
    return {"id": i, "event": EVENTS[i % 4], "amount": i, "currency": "USD", "timestamp": 1705004567 + i}


def records(n: int, topic: str) -> list[SinkRecord]:
    return [SinkRecord(payment(i), topic, i % 4, i // 4, 0, "bench", {}, None, None) for i in range(n)]


def settings(root: str, topic: str, batch: int, table: str) -> DeltaLakeSettings:
    return DeltaLakeSettings.model_validate(
        {"table_root": root, "topic_mappings": [
            {"topic": topic, "subscription": "bench", "table": table, "batch_size": batch, "columns": COLUMNS}
        ]}
    )  # fmt: skip


SCHEMA = pa.schema(
    [("id", pa.int64()), ("event", pa.string()), ("amount", pa.int64()), ("currency", pa.string()),
     ("ts", pa.timestamp("us", tz="UTC"))]
)  # fmt: skip
#: The payload as it arrives (epoch seconds), for the raw pipeline's own decoding.
PAYLOAD_SCHEMA = pa.schema(
    [("id", pa.int64()), ("event", pa.string()), ("amount", pa.int64()), ("currency", pa.string()),
     ("timestamp", pa.int64())]
)  # fmt: skip


def direct_tables(n: int, batch: int) -> list[pa.Table]:
    """The floor's input: the payment rows as Arrow tables of ``batch`` rows, built before any clock."""
    rows = [{**payment(i), "ts": (1705004567 + i) * 1_000_000} for i in range(n)]
    for r in rows:
        r.pop("timestamp")
    return [pa.Table.from_pylist(rows[i : i + batch], schema=SCHEMA) for i in range(0, n, batch)]


async def write_paths(root: str, recs: list[SinkRecord], batch: int, name: str) -> tuple[float, float]:
    """One round of the write-path goal: (direct rows/s, sink write path rows/s).

    Two fresh tables, one per side, written batch by batch in alternation: the direct append of a table
    built beforehand (delta-rs alone, called in the loop's thread: no hand-over) and the sink's write on
    a batch prepared as the runtime prepares it (built outside the clock). Both sides write the same
    rows in the same number of commits, so each commit lands on an equally long log, and a load change
    hits both alike. The sink's first write includes what a fresh sink does once (reading the table's
    recorded positions).
    """
    tables = direct_tables(len(recs), batch)
    uri = f"{root}/direct_{name}"
    DeltaTable.create(uri, SCHEMA)
    dt = DeltaTable(uri)
    sink = DeltaLakeSink()
    await sink.initialize(
        make_config("http://127.0.0.1:1", "bench", settings(root, recs[0].topic, batch, f"sink_{name}"))
    )
    batches = [await prepared_batch(sink, recs[i : i + batch]) for i in range(0, len(recs), batch)]
    direct_s = sink_s = 0.0
    for table, b in zip(tables, batches, strict=True):
        start = time.perf_counter()
        write_deltalake(dt, table, mode="append")
        direct_s += time.perf_counter() - start
        start = time.perf_counter()
        await write_prepared(sink, b)
        sink_s += time.perf_counter() - start
    await sink.shutdown()
    return len(recs) / direct_s, len(recs) / sink_s


CountingSink = counting(DeltaLakeSink)


def floor_table(messages: Any) -> pa.Table:
    """The raw pipeline's direct conversion: decode each payload, columns by pyarrow, seconds -> us."""
    t = pa.Table.from_pylist([orjson.loads(m.payload) for m in messages], schema=PAYLOAD_SCHEMA)
    ts = pc.multiply(t["timestamp"], 1_000_000).cast(pa.timestamp("us", tz="UTC"))
    return pa.Table.from_arrays([*t.columns[:4], ts], schema=SCHEMA)


async def raw_pipeline(broker_url: str, root: str, topic: str, n: int, batch: int, table: str) -> float:
    """P3's end-to-end floor: raw-stub consume, direct append of each batch, ack (see raw_stub.py)."""
    await fill(broker_url, topic, "floor", n)
    uri = f"{root}/{table}"
    DeltaTable.create(uri, SCHEMA)
    dt = DeltaTable(uri)

    async def write(messages: Any) -> None:
        table_ = floor_table(messages)
        await asyncio.to_thread(write_deltalake, dt, table_, mode="append")

    return await raw_stub.drain(  # cut as the runtime below: idle 20 ms, window 1000
        broker_url, topic, "floor", 4, n, batch, write, idle_s=0.02, max_age_s=1.0, window=1000
    )


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


async def through_runtime(broker_url: str, root: str, topic: str, n: int, batch: int, table: str) -> float:
    await fill(broker_url, topic, "bench", n)
    config = make_config(
        broker_url,
        "bench-deltalake",
        settings(root, topic, batch, table),
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
    await raw_stub.runtime_settled(runtime, topic)  # the clock ends at the last ack, as the floor's
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return n / elapsed


async def main(n: int, batches: list[int], write_batches: int) -> None:
    results: dict[str, Any] = {}
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = f"{tmp}/lake"
        broker = BrokerProcess(Path(tmp) / "broker", args=["--max-unacked", "1000"])
        broker_url = broker.start()
        try:
            raw = await raw_consume(broker_url, "/default/bench-raw", n)
            for b in batches:
                write_rows = max(n, write_batches * b)
                recs = records(write_rows, f"/default/bench-wp-{b}")
                floors, paths, pipes, rts = [], [], [], []
                for k in range(3):  # fresh tables per round, the two sides alternating batch by batch
                    floor_, path_ = await write_paths(root, recs, b, f"{b}_{k}")
                    floors.append(floor_)
                    paths.append(path_)
                for k in range(3):
                    pipes.append(
                        await raw_pipeline(
                            broker_url, root, f"/default/bench-fl-{b}-{k}", n, b, f"fl_{b}_{k}"
                        )
                    )
                    rts.append(
                        await through_runtime(
                            broker_url, root, f"/default/bench-rt-{b}-{k}", n, b, f"rt_{b}_{k}"
                        )
                    )
                floor, path = statistics.median(floors), statistics.median(paths)
                pipe, rt = statistics.median(pipes), statistics.median(rts)
                results[str(b)] = {
                    "write_path_rows": write_rows,
                    "direct_rows_per_s": floor,
                    "write_path_rows_per_s": path,
                    "write_path_over_direct": path / floor,
                    "raw_pipeline_rows_per_s": pipe,
                    "runtime_rows_per_s": rt,
                    "runtime_over_raw_pipeline": rt / pipe,
                    "runtime_over_direct": rt / floor,
                    "runtime_over_raw_consumer": rt / raw,
                    "rounds": {"direct": floors, "write_path": paths, "raw_pipeline": pipes, "runtime": rts},
                }
        finally:
            broker.stop()
    print(f"Delta Lake sink, {n} payment rows, local table; raw consumer receive+ack: {raw:.0f} msg/s")
    for size, r in results.items():
        print(f"batch {size}:")
        print(f"  direct write_deltalake (floor)   {r['direct_rows_per_s']:9.0f} rows/s")
        print(
            f"  sink write path                  {r['write_path_rows_per_s']:9.0f} rows/s"
            f"   / direct: {r['write_path_over_direct']:.2f}"
        )
        print(f"  raw-stub pipeline (floor)        {r['raw_pipeline_rows_per_s']:9.0f} rows/s")
        print(
            f"  SinkRuntime end to end           {r['runtime_rows_per_s']:9.0f} rows/s"
            f"   / raw pipeline: {r['runtime_over_raw_pipeline']:.2f}"
            f"   / direct: {r['runtime_over_direct']:.4f}"
            f"   / raw consumer: {r['runtime_over_raw_consumer']:.2f}"
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
    result_file = result_path("deltalake.json")
    result_file.parent.mkdir(exist_ok=True)
    result_file.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default: 500 and 2000)")
    parser.add_argument(
        "--write-batches",
        type=int,
        default=10,
        help="least batches per round of the write-path goal (rows: max(messages, W x batch))",
    )
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.batch or [500, 2000], args.write_batches))
