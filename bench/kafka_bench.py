"""Kafka source throughput (Kafka -> danube-source-kafka -> Danube) against its floors, in one run.

    uv run python bench/kafka_bench.py [--records 20000] [--repeats 2]

Everything runs on this machine: the real Kafka broker the tests use (danube_source_kafka.testing; needs
scripts/install_kafka.sh), and the embedded Danube broker as a process (`BrokerProcess`). N records
(~130-byte JSON, a key of 32 and a header each) are produced to a 3-partition Kafka topic first. Then:

- Kafka client floors: the same N records consumed by a fresh group with aiokafka (`getmany`, the
  connector's client) and with confluent-kafka (`consume` through `asyncio.to_thread`, as an asyncio
  program would call it): the README's client comparison.
- Raw-stub publish floor: the same Danube client the core uses (`DanubeClient.create_producer`, reliable
  topic, 3 partitions, window 64) publishing N prepared payloads with their keys, 256 in flight.
- The connector: `KafkaSource` in a `SourceRuntime` in this process, from its first fetched record (the
  group joined) to the group's committed offsets at the end of every partition (commits follow Danube's
  acks, invariant 1): records/s, with ``ordering = "key"`` (the default: one send in flight per key, 32
  keys) and ``"none"`` (no waiting: the ceiling).

Ratios are against the raw publish floor measured in the same run. Results: bench/results/kafka.json.
Not a test: nothing asserted.
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
from danube_connect_core.testing import make_config, start_runtime
from danube_embedded_broker.testing import BrokerProcess
from danube_source_kafka.connector import KafkaSource
from danube_source_kafka.settings import KafkaSettings
from danube_source_kafka.testing import (
    Produced,
    committed_offsets,
    create_topic,
    produce,
    session_broker,
    unique,
)
from result_files import result_path

RESULTS = result_path("kafka.json")
PARTITIONS = 3


def value(i: int) -> bytes:
    return orjson.dumps({"id": i, "celsius": 21.5, "sensor": f"s{i % 8}", "pad": "x" * 64})


async def aiokafka_rate(bootstrap: str, topic: str, n: int) -> float:
    from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=unique("b"), auto_offset_reset="earliest",
        enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    seen, started = 0, 0.0
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=1000)
            for records in batch.values():
                if records and not started:
                    started = time.perf_counter()
                for r in records:
                    _ = (r.key, r.value, r.headers, r.offset)
                seen += len(records)
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def confluent_rate(bootstrap: str, topic: str, n: int) -> float:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("b"), "auto.offset.reset": "earliest",
         "enable.auto.commit": False}
    )  # fmt: skip
    consumer.subscribe([topic])
    seen, started = 0, 0.0
    try:
        while seen < n:
            records = await asyncio.to_thread(consumer.consume, 1000, 1.0)
            if records and not started:
                started = time.perf_counter()
            for r in records:
                _ = (r.key(), r.value(), r.headers(), r.offset())
            seen += len(records)
        return n / (time.perf_counter() - started)
    finally:
        await asyncio.to_thread(consumer.close)


async def raw_publish_rate(url: str, n: int) -> float:
    client = DanubeClient(url)
    try:
        producer = await client.create_producer(
            f"/default/floor-{time.monotonic_ns()}", "floor", partitions=PARTITIONS, reliable=True,
            max_in_flight=64,
        )  # fmt: skip
        data = [(value(i), f"k{i % 32}") for i in range(n)]
        sem = asyncio.Semaphore(256)

        async def one(payload: bytes, key: str) -> None:
            async with sem:
                await producer.send(payload, attributes={"kafka.topic": "t"}, key=key)

        started = time.perf_counter()
        await asyncio.gather(*(one(p, k) for p, k in data))
        elapsed = time.perf_counter() - started
        await producer.close()
        return n / elapsed
    finally:
        await client.close()


async def connector_rate(url: str, bootstrap: str, topic: str, n: int, ordering: str) -> float:
    group = unique("bench")
    settings = KafkaSettings.model_validate(
        {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "ordering": ordering,
            "topic_mappings": [
                {"kafka_topic": topic, "danube_topic": f"/default/{group}", "partitions": PARTITIONS}
            ],
        }
    )
    config = make_config(url, group, settings, processing={"metrics_port": 0, "log_level": "warning"})
    source = KafkaSource()
    running = await start_runtime(source, config)
    try:
        async with asyncio.timeout(300):  # the clock starts at the first record fetched (group joined)
            while source.intake is None or source.intake.counts.consumed == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        started = time.perf_counter()
        async with asyncio.timeout(900):
            while True:
                ends = await asyncio.to_thread(committed_offsets, bootstrap, group, topic, PARTITIONS)
                if sum(max(0, o) for o in ends.values()) >= n:
                    break
                await asyncio.sleep(0.2)
        return n / (time.perf_counter() - started)
    finally:
        await running.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    n = args.records
    kafka = await asyncio.to_thread(session_broker)
    topic = unique("bench")
    await asyncio.to_thread(create_topic, kafka.bootstrap, topic, PARTITIONS)
    records = [Produced(topic, f"k{i % 32}".encode(), value(i), [("origin", b"bench")]) for i in range(n)]
    await asyncio.to_thread(produce, kafka.bootstrap, records)
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        broker = BrokerProcess(Path(tmp) / "broker")
        broker.start()
        try:
            for _ in range(args.repeats):
                for label, run in [
                    ("kafka client: aiokafka getmany", lambda: aiokafka_rate(kafka.bootstrap, topic, n)),
                    ("kafka client: confluent-kafka consume (to_thread)",
                     lambda: confluent_rate(kafka.bootstrap, topic, n)),
                    ("floor: raw Danube publish, 256 in flight", lambda: raw_publish_rate(broker.url, n)),
                    ("kafka -> danube: danube-source-kafka, ordering = key (32 keys)",
                     lambda: connector_rate(broker.url, kafka.bootstrap, topic, n, "key")),
                    ("kafka -> danube: danube-source-kafka, ordering = none",
                     lambda: connector_rate(broker.url, kafka.bootstrap, topic, n, "none")),
                ]:  # fmt: skip
                    rate = await run()
                    results.setdefault(label, []).append(rate)
                    print(f"{label}: {rate:,.0f} records/s", flush=True)
        finally:
            broker.stop()
    floor = statistics.median(results["floor: raw Danube publish, 256 in flight"])
    print(f"\n{n} records, median of {args.repeats} runs\n")
    print("| scenario | records/s | vs raw publish floor |")
    print("|---|---:|---:|")
    rows: list[dict[str, Any]] = []
    for label, rates in results.items():
        med = statistics.median(rates)
        rows.append({"scenario": label, "records_per_s": med, "runs": rates, "vs_floor": med / floor})
        print(f"| {label} | {med:,.0f} | {med / floor:.2f}x |")
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_end": os.getloadavg(),
    }
    RESULTS.write_text(
        json.dumps({"records": n, "repeats": args.repeats, "machine": machine, "results": rows}, indent=2)
        + "\n"
    )
    print(f"\nwritten {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
