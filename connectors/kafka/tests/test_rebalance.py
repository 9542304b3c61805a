"""The connector as real processes (``danube-connect run kafka``) against the real Kafka broker and the
embedded Danube broker.

(SIGKILL mid-stream, a Danube outage and bad input are in tests/faults/test_kafka_source.py.)

- Two instances in one consumer group split the partitions; the second one joining and then leaving
  (SIGTERM) are two rebalances, and no record is lost across them; since each side commits what Danube
  acknowledged before giving partitions up, these graceful rebalances publish nothing twice.
"""

from __future__ import annotations

# ruff: noqa: ASYNC110 - polling collectors and /metrics, which have no event to wait on
import asyncio
import re
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from danube_connect_core.testing import ConnectorProcess, http_get
from danube_connect_core.testing.waits import settled
from danube_source_kafka.testing import (
    DanubeCollector,
    KafkaBroker,
    Produced,
    create_topic,
    produce,
    unique,
    wait_ready,
)

ASSIGNED = re.compile(r"^danube_kafka_assigned_partitions\{[^}]*\} ([0-9.e+]+)$", re.M)


def write_config(path: Path, url: str, kafka: KafkaBroker, name: str, group: str, topic: str) -> Path:
    path.write_text(
        f"""
danube_service_url = "{url}"
connector_name = "{name}"

[processing]
metrics_port = 0
log_level = "info"

[kafka]
bootstrap_servers = "{kafka.bootstrap}"
group_id = "{group}"
max_poll_records = 200
session_timeout_ms = 10000
heartbeat_interval_ms = 1000

[[kafka.topic_mappings]]
kafka_topic = "{topic}"
danube_topic = "/default/{name}"
partitions = 3
"""
    )
    return path


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def payloads(topic: str, start: int, count: int) -> list[Produced]:
    return [
        Produced(topic, f"k{i % 16}".encode(), orjson.dumps({"i": i, "pad": "x" * 64}))
        for i in range(start, start + count)
    ]


def positions(collector: DanubeCollector) -> Counter[tuple[int, int]]:
    """(Kafka partition, offset) of every record published to Danube, with how often."""
    return Counter(
        (int(m.attributes["kafka.partition"]), int(m.attributes["kafka.offset"])) for m in collector.messages
    )


async def assigned(proc: ConnectorProcess) -> int:
    port = await asyncio.to_thread(proc.metrics_port)
    _, body = await asyncio.to_thread(http_get, port, "/metrics")
    found = ASSIGNED.findall(body)
    return int(float(found[0])) if found else 0


async def start(cfg: Path) -> ConnectorProcess:
    proc = ConnectorProcess("kafka", cfg).start()
    port = await asyncio.to_thread(proc.metrics_port, 120)
    await wait_ready(port)
    return proc


def _count(seen: Counter[tuple[int, int]], partition: int) -> int:
    return len({o for p, o in seen if p == partition})


@pytest.mark.slow
async def test_two_instances_split_the_partitions_and_rebalances_lose_nothing(
    kafka: KafkaBroker, broker_factory: Any, tmp_path: Path
) -> None:
    topic, group, name = unique("split"), unique("g"), "kafka-split"
    await asyncio.to_thread(create_topic, kafka.bootstrap, topic, 3)
    danube = await broker_factory()
    cfg_a = write_config(tmp_path / "a.toml", danube.url, kafka, name, group, topic)
    a = await start(cfg_a)
    collector = await DanubeCollector(danube.url, f"/default/{name}", "c").start()
    b: ConnectorProcess | None = None
    produced = 0
    try:
        await asyncio.to_thread(produce, kafka.bootstrap, payloads(topic, 0, 1500))
        produced = 1500
        # B joins while A is consuming: a rebalance; afterwards they split the 3 partitions
        b = await start(cfg_a)
        async with asyncio.timeout(180):
            while True:
                counts = (await assigned(a), await assigned(b))
                if sum(counts) == 3 and min(counts) >= 1:
                    break
                await asyncio.sleep(0.2)
        await asyncio.to_thread(produce, kafka.bootstrap, payloads(topic, produced, 1500))
        produced += 1500
        async with asyncio.timeout(300):
            while len(positions(collector)) < produced:
                await asyncio.sleep(0.05)
        # B leaves mid-stream (SIGTERM drains and commits): A takes all partitions back
        more = asyncio.create_task(
            asyncio.to_thread(produce, kafka.bootstrap, payloads(topic, produced, 1500))
        )
        await asyncio.sleep(0.3)
        b.signal(signal.SIGTERM)
        assert await asyncio.to_thread(b.wait, 120) == 0, b.log_tail()
        await more
        produced += 1500
        async with asyncio.timeout(300):
            while len(positions(collector)) < produced:
                await asyncio.sleep(0.05)
        # every record can be on Danube (B drained its partitions) before A's rebalance assigned it all
        assert await settled(lambda: assigned(a), lambda n: n == 3, within=120) == 3
        a.signal(signal.SIGTERM)
        assert await asyncio.to_thread(a.wait, 60) == 0, a.log_tail()
    finally:
        a.kill()
        if b is not None:
            b.kill()
        await collector.close()
    seen = positions(collector)
    assert sum(_count(seen, p) for p in range(3)) == produced  # none lost
    duplicates = sum(n - 1 for n in seen.values())
    print(f"\ntwo instances, two rebalances: {produced} records, {duplicates} duplicates")
    assert duplicates == 0
