"""Benchmark of the ClickHouse sink (not a test: asserts nothing, prints ratios measured in one run).

Against ClickHouse in-process (chdb, through clickhouse-connect's ``chdb://`` DSN), payment rows into a
MergeTree table with the metadata columns and ``non_replicated_deduplication_window``, for each batch size:

1. P3 end to end: rows/s through SinkRuntime (broker -> consume, decode, batch -> the sink's write (value
   conversion, position check, one insert with its de-duplication token) -> ack) vs the raw-stub pipeline
   on the same broker (``raw_stub.drain``: generated gRPC stubs, batches of the same size, each decoded,
   built into an Arrow table with the metadata columns and inserted with ``insert_arrow`` by this script,
   then acked). Context rows: the runtime vs the direct insert of ready rows (the floor before 2026-12-04)
   and vs a bare consumer (receive + ack only);
2. the sink's write path alone: its write on a ready batch vs a direct insert of the same rows built
   beforehand (metadata included, no token), same batch size: the faster of ``client.insert`` (Python
   rows) and ``client.insert_arrow`` (an Arrow table), each measured. The three alternate batch by batch,
   each into its own fresh table, so a load change hits all alike; at least ``--write-batches`` batches
   per round (default 10). The sink is fresh each round, so its first batch also reads the table's
   positions (one query; once per partition and process in a running sink).
Medians of 3 rounds (the end-to-end pair alternates too).

The broker runs in its own process (console script, max_unacked_messages 1000 so batches fill).
Results: bench/results/clickhouse.json.
Usage: uv run python bench/clickhouse_bench.py [--messages N] [--batch B ...] [--write-batches W]
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
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import raw_stub
from danube_connect_core.client import DanubeClient
from danube_connect_core.records import SinkRecord
from danube_connect_core.sink_runtime import SinkRuntime
from danube_connect_core.testing import make_config
from danube_embedded_broker.testing import BrokerProcess
from danube_sink_clickhouse.connector import ClickHouseSink
from danube_sink_clickhouse.rows import RowBuilder
from danube_sink_clickhouse.settings import ClickHouseSettings
from danube_sink_clickhouse.table_schema import describe_table
from result_files import result_path
from sink_calls import counting, prepared_batch, write_prepared

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


def direct_rows(client: Any, recs: list[SinkRecord], table: str) -> list[list[Any]]:
    """The floor's input: a fresh table and the rows the sink would build for ``recs``, built beforehand."""
    create(client, table)
    schema = describe_table(client, "bench", table)
    return RowBuilder(schema, include_metadata=True, field_paths={}, reject_unknown=False).build(recs).rows


ARROW_SCHEMA = pa.schema(
    [("id", pa.int64()), ("event", pa.string()), ("amount", pa.int64()), ("currency", pa.string()),
     ("timestamp", pa.timestamp("ms", tz="UTC")), ("_danube_topic", pa.string()),
     ("_danube_partition", pa.int32()), ("_danube_offset", pa.int64()), ("_danube_message_id", pa.string()),
     ("_danube_publish_time", pa.timestamp("us", tz="UTC")), ("_danube_key", pa.string()),
     ("_danube_attributes", pa.string())]
)  # fmt: skip


def table_of(rows: list[list[Any]]) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(list(c), f.type) for c, f in zip(zip(*rows, strict=True), ARROW_SCHEMA, strict=True)],
        schema=ARROW_SCHEMA,
    )


async def write_paths(
    client: Any, dsn: str, recs: list[SinkRecord], batch: int, name: str
) -> tuple[float, float, float]:
    """One round of the write-path goal: rows/s of (``client.insert``, ``client.insert_arrow``, the sink).

    Three fresh tables, written batch by batch in alternation: the two direct inserts of rows and Arrow
    tables built beforehand (clickhouse-connect alone, in the loop's thread: no hand-over), and the
    sink's write on a batch prepared as the runtime prepares it (built outside the clock).
    """
    rows = direct_rows(client, recs, f"direct_{name}")
    names = describe_table(client, "bench", f"direct_{name}").names()
    tables = [table_of(rows[i : i + batch]) for i in range(0, len(rows), batch)]
    create(client, f"arrow_{name}")
    create(client, f"sink_{name}")
    sink = ClickHouseSink()
    config = make_config("http://127.0.0.1:1", "bench", settings(dsn, recs[0].topic, batch, f"sink_{name}"))
    await sink.initialize(config)
    batches = [await prepared_batch(sink, recs[i : i + batch]) for i in range(0, len(recs), batch)]
    rows_s = arrow_s = sink_s = 0.0
    for k, (table, b) in enumerate(zip(tables, batches, strict=True)):
        start = time.perf_counter()
        client.insert(
            f"direct_{name}", rows[k * batch : (k + 1) * batch], column_names=names, database="bench"
        )
        rows_s += time.perf_counter() - start
        start = time.perf_counter()
        client.insert_arrow(f"arrow_{name}", table, database="bench")
        arrow_s += time.perf_counter() - start
        start = time.perf_counter()
        await write_prepared(sink, b)
        sink_s += time.perf_counter() - start
    await sink.shutdown()
    n = len(recs)
    return n / rows_s, n / arrow_s, n / sink_s


CountingSink = counting(ClickHouseSink)

#: The payload as it arrives, for the raw pipeline's own decoding.
PAYLOAD_SCHEMA = pa.schema(
    [("id", pa.int64()), ("event", pa.string()), ("amount", pa.int64()), ("currency", pa.string()),
     ("timestamp", pa.int64())]
)  # fmt: skip


def floor_table(messages: Any) -> pa.Table:
    """The raw pipeline's direct conversion: decode each payload, columns by pyarrow, the metadata
    columns from the messages (what the sink fills with include_metadata)."""
    t = pa.Table.from_pylist([orjson.loads(m.payload) for m in messages], schema=PAYLOAD_SCHEMA)
    ts = pc.multiply(t["timestamp"], 1_000).cast(pa.timestamp("ms", tz="UTC"))
    topics = [m.msg_id.topic_name for m in messages]
    base = topics[0].rpartition("-part-")[0]
    partitions = [raw_stub.partition_of(name) for name in topics]
    offsets = [m.msg_id.topic_offset for m in messages]
    n = len(messages)
    return pa.Table.from_arrays(
        [
            *t.columns[:4],
            ts,
            pa.array([base] * n, pa.string()),
            pa.array(partitions, pa.int32()),
            pa.array(offsets, pa.int64()),
            pa.array([f"{base}:{p}:{o}" for p, o in zip(partitions, offsets, strict=True)], pa.string()),
            pa.array([m.publish_time for m in messages], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            pa.array([""] * n, pa.string()),
            pa.array(["{}"] * n, pa.string()),
        ],
        schema=ARROW_SCHEMA,
    )


async def raw_pipeline(broker_url: str, client: Any, topic: str, n: int, batch: int, table: str) -> float:
    """P3's end-to-end floor: raw-stub consume, direct insert of each batch, ack (see raw_stub.py)."""
    create(client, table)
    await fill(broker_url, topic, "floor", n)

    async def write(messages: Any) -> None:
        t = floor_table(messages)
        await asyncio.to_thread(client.insert_arrow, table, t, database="bench")

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
    await raw_stub.runtime_settled(runtime, topic)  # the clock ends at the last ack, as the floor's
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return n / elapsed


async def main(n: int, batches: list[int], write_batches: int) -> None:
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
                write_rows = max(n, write_batches * b)
                recs = records(write_rows, f"/default/bench-wp-{b}")
                rows_floors, arrow_floors, paths, pipes, rts = [], [], [], [], []
                for k in range(3):  # fresh tables per round, the three alternating batch by batch
                    rows_floor_, arrow_floor_, path_ = await write_paths(client, dsn, recs, b, f"{b}_{k}")
                    rows_floors.append(rows_floor_)
                    arrow_floors.append(arrow_floor_)
                    paths.append(path_)
                for k in range(3):
                    pipes.append(
                        await raw_pipeline(
                            broker_url, client, f"/default/bench-fl-{b}-{k}", n, b, f"fl_{b}_{k}"
                        )
                    )
                    rts.append(
                        await through_runtime(
                            broker_url, client, dsn, f"/default/bench-rt-{b}-{k}", n, b, f"rt_{b}_{k}"
                        )
                    )
                rows_floor, arrow_floor = statistics.median(rows_floors), statistics.median(arrow_floors)
                floor, path = max(rows_floor, arrow_floor), statistics.median(paths)
                pipe, rt = statistics.median(pipes), statistics.median(rts)
                results[str(b)] = {
                    "write_path_rows": write_rows,
                    "direct_rows_per_s": floor,
                    "direct_insert_rows_per_s": rows_floor,
                    "direct_insert_arrow_rows_per_s": arrow_floor,
                    "write_path_rows_per_s": path,
                    "write_path_over_direct": path / floor,
                    "raw_pipeline_rows_per_s": pipe,
                    "runtime_rows_per_s": rt,
                    "runtime_over_raw_pipeline": rt / pipe,
                    "runtime_over_direct": rt / rows_floor,
                    "runtime_over_raw_consumer": rt / raw,
                    "rounds": {
                        "direct_insert": rows_floors,
                        "direct_insert_arrow": arrow_floors,
                        "write_path": paths,
                        "raw_pipeline": pipes,
                        "runtime": rts,
                    },
                }
        finally:
            broker.stop()
    print(f"ClickHouse sink, {n} payment rows, chdb; raw consumer receive+ack: {raw:.0f} msg/s")
    for size, r in results.items():
        print(f"batch {size}:")
        print(f"  direct client.insert             {r['direct_insert_rows_per_s']:9.0f} rows/s")
        print(f"  direct client.insert_arrow       {r['direct_insert_arrow_rows_per_s']:9.0f} rows/s")
        print(
            f"  sink write path                  {r['write_path_rows_per_s']:9.0f} rows/s"
            f"   / direct (the faster): {r['write_path_over_direct']:.2f}"
        )
        print(f"  raw-stub pipeline (floor)        {r['raw_pipeline_rows_per_s']:9.0f} rows/s")
        print(
            f"  SinkRuntime end to end           {r['runtime_rows_per_s']:9.0f} rows/s"
            f"   / raw pipeline: {r['runtime_over_raw_pipeline']:.2f}"
            f"   / direct insert: {r['runtime_over_direct']:.4f}"
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
    result_file = result_path("clickhouse.json")
    result_file.parent.mkdir(exist_ok=True)
    result_file.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default: 500 and 2000)")
    parser.add_argument(
        "--write-batches", type=int, default=10, help="at least this many batches per write-path round"
    )
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.batch or [500, 2000], args.write_batches))
