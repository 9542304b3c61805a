"""Qdrant sink throughput: SinkRuntime + QdrantSink draining a backlog vs the raw-stub pipeline.

    uv run python bench/qdrant_bench.py [--records 3000] [--batch-size 200]

The broker runs in its own process (BrokerProcess). The sink subscribes once (so the subscription exists),
stops, N records are produced on a 4-partition reliable topic, then the sink starts again and drains the
backlog into Qdrant local mode on tmpfs (/dev/shm when present); its clock stops once every record is in
the collection and acked (as the floor's stops at its last ack). P3 floor, same run: the raw-stub pipeline
(``raw_stub.drain``: generated gRPC stubs on the same broker, batches of the same size, each decoded and
upserted directly with AsyncQdrantClient into a fresh local store, then acked); ratio = sink rows/s /
raw pipeline rows/s (goal >= 0.8), medians of 3 rounds in which the two alternate (each round on its own
topic and store). Context (the floor before 2026-12-04): the same points, built by the sink's own mapping
code beforehand, upserted directly in batches of the same size.
Writes bench/results/qdrant.json. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import raw_stub
from danube_connect_core.client import DanubeClient
from danube_connect_core.records import SinkRecord
from danube_connect_core.testing import http_get, make_config, produce, start_runtime
from danube_embedded_broker.testing import BrokerProcess
from danube_sink_qdrant import QdrantSettings, QdrantSink
from danube_sink_qdrant.points import to_point
from qdrant_client import AsyncQdrantClient, models
from result_files import result_path

TOPIC = "/default/bench-vectors"
DIM = 64


def payloads(n: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "v": [((i * 7 + j) % 97) / 97 for j in range(DIM)], "title": f"doc {i}"} for i in range(n)
    ]


async def sink_run(url: str, store: str, topic: str, n: int, batch: int) -> float:
    settings = QdrantSettings.model_validate(
        {
            "url": f"path:{store}",
            "topic_mappings": [
                {
                    "topic": topic,
                    "subscription": "bench",
                    "collection": "c",
                    "vector_field": "v",
                    "id_field": "id",
                    "dimension": DIM,
                    "batch_size": batch,
                }
            ],
        }
    )
    cfg = make_config(url, "qdrant-bench", settings, processing={"batch_size": batch})
    await produce(url, topic, [], partitions=4)
    first = await start_runtime(QdrantSink(), cfg)
    while (await asyncio.to_thread(http_get, first.port, "/ready"))[0] != 200:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await first.stop()  # the subscription now exists: the backlog below waits for it
    await produce(url, topic, payloads(n), partitions=4)
    sink = QdrantSink()
    running = await start_runtime(sink, cfg)
    started = time.perf_counter()
    while True:
        if sink.engine is not None:
            try:
                count = (await sink.engine.call(lambda c: c.count("c", exact=True))).count
            except ValueError:  # the collection is not created yet
                count = 0
            if count >= n:
                break
        await asyncio.sleep(0.02)
    await raw_stub.runtime_settled(running.runtime, topic)  # the clock ends at the last ack, as the floor's
    elapsed = time.perf_counter() - started
    await running.stop()
    return n / elapsed


async def direct_run(store: str, n: int, batch: int) -> float:
    mapping = QdrantSettings.model_validate(
        {
            "url": ":memory:",
            "topic_mappings": [
                {
                    "topic": TOPIC,
                    "subscription": "b",
                    "collection": "c",
                    "vector_field": "v",
                    "id_field": "id",
                    "dimension": DIM,
                }
            ],
        }
    ).topic_mappings[0]
    records = [SinkRecord(p, TOPIC, i % 4, i, 0, "", {}, None, None) for i, p in enumerate(payloads(n))]
    client = AsyncQdrantClient(path=store)
    await client.create_collection(
        "c", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    started = time.perf_counter()
    for k in range(0, n, batch):
        points = [to_point(r, mapping, {"": DIM}) for r in records[k : k + batch]]
        await client.upsert(
            "c", [models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points], wait=True
        )
    elapsed = time.perf_counter() - started
    await client.close()
    return n / elapsed


async def raw_pipeline(url: str, store: str, topic: str, n: int, batch: int) -> float:
    """P3's end-to-end floor: the same backlog (on ``topic``), raw-stub consume, each batch upserted
    directly (points from the decoded payloads), then acked (see raw_stub.py)."""
    await produce(url, topic, [], partitions=4)  # creates the partitioned topic
    client = DanubeClient(url)
    consumer = await client.subscribe(topic, "floor", consumer_name="floor-setup")
    await consumer.close()  # the subscription exists before the messages, so it receives all of them
    await client.close()
    await produce(url, topic, payloads(n), partitions=4)
    qdrant = AsyncQdrantClient(path=store)
    await qdrant.create_collection(
        "c", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )

    async def write(messages: Any) -> None:
        points = []
        for m in messages:
            doc = orjson.loads(m.payload)
            points.append(models.PointStruct(id=doc.pop("id"), vector=doc.pop("v"), payload=doc))
        await qdrant.upsert("c", points, wait=True)

    try:
        return (
            await raw_stub.drain(  # cut as the sink's runtime: defaults (idle 50 ms, 1 s, broker window 10)
                url, topic, "floor", 4, n, batch, write, idle_s=0.05, max_age_s=1.0, window=10
            )
        )
    finally:
        await qdrant.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=200)
    args = ap.parse_args()
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: ASYNC240
    work = Path(tempfile.mkdtemp(prefix="qdrant-bench-", dir=base))
    broker = BrokerProcess(work / "broker")
    url = broker.start()
    pipes: list[float] = []
    sinks: list[float] = []
    try:
        direct = await direct_run(str(work / "direct"), args.records, args.batch_size)
        for k in range(3):  # the pair alternates, so load changes hit both alike
            pipes.append(
                await raw_pipeline(
                    url, str(work / f"floor{k}"), f"{TOPIC}-floor-{k}", args.records, args.batch_size
                )
            )
            sinks.append(
                await sink_run(url, str(work / f"sink{k}"), f"{TOPIC}-{k}", args.records, args.batch_size)
            )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    pipe, sink = statistics.median(pipes), statistics.median(sinks)
    ratio = sink / pipe
    print(f"records={args.records} batch={args.batch_size} dim={DIM} (Qdrant local mode on {base or 'tmp'})")
    print(f"direct bulk upsert (context) : {direct:8.0f} rows/s")
    print(f"raw-stub pipeline (floor)    : {pipe:8.0f} rows/s")
    print(f"SinkRuntime + sink           : {sink:8.0f} rows/s   ratio {ratio:.2f}x (goal >= 0.8)")
    out = {
        "records": args.records,
        "batch_size": args.batch_size,
        "dimension": DIM,
        "direct_rows_per_s": round(direct, 1),
        "raw_pipeline_rows_per_s": round(pipe, 1),
        "sink_rows_per_s": round(sink, 1),
        "ratio": round(ratio, 3),
        "rounds": {"raw_pipeline": [round(x, 1) for x in pipes], "sink": [round(x, 1) for x in sinks]},
        "sink_over_direct": round(sink / direct, 3),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
    }
    result_path("qdrant.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
