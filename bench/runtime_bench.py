"""Benchmark of the connect-core runtime (not a test: asserts nothing, prints ratios measured in one run).

1. Sink: records/s through SinkRuntime (consume, decode, batch, write, ack) into an in-memory
   sink, vs two floors measured in the same run: our raw consumer (receive + ack, nothing else) and
   handing the same decoded records to the sink directly in batches of the same size.
2. JSON Schema validation: µs per document for schemas/payment.json with the compiled validator
   (jsonschema-rs), valid and invalid documents, and validate + serialise (what a source does).

The broker runs in its own process (the real console script), max_unacked_messages 1000 so batches fill.
Results go to bench/results/runtime_bench.json. Usage: uv run python bench/runtime_bench.py [--messages N]
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
from danube_connect_core.consumer_config import ConsumerConfig
from danube_connect_core.records import SinkRecord, SourceRecord
from danube_connect_core.schema_codec import JsonSchemaCodec
from danube_connect_core.sink_runtime import SinkRuntime
from danube_connect_core.testing import MemorySink, make_config, write_batch
from danube_embedded_broker.testing import BrokerProcess
from result_files import result_path

REPO = Path(__file__).resolve().parents[1]
BATCH = 500
PAYMENT = {"event": "payment.succeeded", "amount": 12345, "currency": "USD", "timestamp": 1705004567}


async def fill(url: str, topic: str, subscription: str, n: int) -> None:
    client = DanubeClient(url)
    producer = await client.create_producer(topic, "bench", reliable=True, max_in_flight=64)
    consumer = await client.subscribe(topic, subscription, consumer_name="bench-setup")
    await consumer.close()  # the subscription exists before the messages, so it receives all of them
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            await producer.send(orjson.dumps({**PAYMENT, "amount": i}))

    await asyncio.gather(*(one(i) for i in range(n)))
    await producer.close()
    await client.close()


async def raw_consume(url: str, topic: str, n: int) -> float:
    await fill(url, topic, "raw", n)
    client = DanubeClient(url)
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


async def runtime_consume(url: str, topic: str, n: int) -> tuple[float, list[SinkRecord]]:
    await fill(url, topic, "runtime", n)
    sink = MemorySink([ConsumerConfig(topic, "runtime", batch_size=BATCH)])
    config = make_config(
        url,
        "bench-sink",
        processing={
            "metrics_port": 0,
            "batch_size": BATCH,
            "max_unacked_messages": 1000,
            "batch_idle_ms": 20,
        },
    )
    runtime = SinkRuntime(sink, config)
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(runtime.run(stop))
    await sink.wait_for(n, within=600)
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return n / elapsed, list(sink.records)


async def direct(records: list[SinkRecord]) -> float:
    sink = MemorySink([ConsumerConfig(records[0].topic, records[0].subscription)])
    start = time.perf_counter()
    for i in range(0, len(records), BATCH):
        await write_batch(sink, records[i : i + BATCH])
    return len(records) / max(time.perf_counter() - start, 1e-9)


def validation() -> dict[str, float]:
    codec = JsonSchemaCodec((REPO / "schemas" / "payment.json").read_bytes())
    valid = [{**PAYMENT, "amount": i} for i in range(20000)]
    invalid = [{**PAYMENT, "currency": "usd", "amount": i} for i in range(20000)]
    out: dict[str, float] = {}
    for name, docs, fn in (
        ("validate valid", valid, codec.validator.is_valid),
        ("validate invalid", invalid, codec.validator.is_valid),
        ("validate+serialise (encode)", valid, lambda d: codec.encode(SourceRecord("/t", d))),
    ):
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            for d in docs:
                fn(d)
            runs.append((time.perf_counter() - start) / len(docs) * 1e6)
        out[name] = statistics.median(runs)
    return out


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = BrokerProcess(Path(tmp), args=["--max-unacked", "1000"])
        url = broker.start()
        try:
            raw = await raw_consume(url, "/default/bench-raw", n)
            rt, records = await runtime_consume(url, "/default/bench-runtime", n)
            floor = await direct(records)
        finally:
            broker.stop()
    v = validation()
    print(f"sink, {n} messages, batch {BATCH} (messages/s):")
    print(f"  raw consumer receive+ack      {raw:10.0f}")
    print(f"  SinkRuntime -> memory sink    {rt:10.0f}   ratio to raw consumer: {rt / raw:.2f}")
    print(
        f"  direct write (floor)      {floor:10.0f}   runtime / direct: {rt / floor:.2e}"
        " (the broker round trips dominate)"
    )
    print("JSON Schema (schemas/payment.json), µs per document, median of 3:")
    for name, us in v.items():
        print(f"  {name:30s} {us:8.2f}")
    result = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "messages": n,
        "batch": BATCH,
        "raw_consumer_per_s": raw,
        "runtime_per_s": rt,
        "direct_per_s": floor,
        "runtime_over_raw": rt / raw,
        "runtime_over_direct": rt / floor,
        "validation_us": v,
    }
    out = result_path("runtime_bench.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    asyncio.run(main(parser.parse_args().messages))
