"""End to end in one process: the real Kafka broker -> KafkaSource (SourceRuntime) -> embedded Danube.

10,000 records over 2 Kafka topics of 3 partitions each (one mapped by name, one by pattern) arrive on
their Danube topics exactly once, with the Kafka key as routing key, the headers and the kafka.* attributes,
in order per key; afterwards the group's committed offsets are at the end of every partition.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from danube_connect_core.testing import make_config, start_runtime
from danube_source_kafka.connector import KafkaSource
from danube_source_kafka.settings import KafkaSettings
from danube_source_kafka.testing import (
    DanubeCollector,
    KafkaBroker,
    Produced,
    create_topic,
    produce,
    unique,
    wait_ready,
)

KEYS = 24


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return [tp.offset for tp in tps]
    finally:
        consumer.close()


def records(topic: str, count: int, start: int = 0) -> list[Produced]:
    """``count`` JSON records over KEYS keys; ``seq`` counts per key, so order per key is checkable."""
    out = []
    seq: dict[int, int] = defaultdict(int)
    for i in range(start, start + count):
        k = i % KEYS
        seq[k] += 1
        value = orjson.dumps({"i": i, "key": f"k{k}", "seq": seq[k]})
        out.append(
            Produced(topic, f"k{k}".encode(), value, [("trace", f"t-{i}".encode()), ("origin", b"test")])
        )
    return out


@pytest.mark.slow
async def test_ten_thousand_records_over_two_topics_and_three_partitions(
    kafka: KafkaBroker, broker_factory: Any
) -> None:
    orders, events = unique("orders"), unique("events.eu")
    for t in (orders, events):
        await asyncio.to_thread(create_topic, kafka.bootstrap, t, 3)
    danube = await broker_factory()
    group = unique("group")
    settings = KafkaSettings.model_validate(
        {
            "bootstrap_servers": kafka.bootstrap,
            "group_id": group,
            "topic_mappings": [
                {"kafka_topic": orders, "danube_topic": "/default/orders", "partitions": 3},
                {
                    "kafka_pattern": events.replace(".eu", r"\.[a-z]+"),
                    "danube_topic": "/default/events",
                    "payload_format": "json",
                },
            ],
        }
    )
    running = await start_runtime(KafkaSource(), make_config(danube.url, "kafka-e2e", settings))
    # the Danube topics exist once the source is ready; subscriptions start at the end of the topic,
    # so the records are produced after the collectors subscribed
    await wait_ready(running.port)
    orders_c = await DanubeCollector(danube.url, "/default/orders", "o").start()
    events_c = await DanubeCollector(danube.url, "/default/events", "e").start()
    try:
        sent = await asyncio.to_thread(
            produce, kafka.bootstrap, records(orders, 6000) + records(events, 4000)
        )
        assert sent == 10_000
        got_orders = await orders_c.wait_for(6000, within=300)
        got_events = await events_c.wait_for(4000, within=300)
        # the runtime commits as acks arrive: wait until the group is at the end of every partition
        async with asyncio.timeout(120):
            while True:
                ends = [
                    await asyncio.to_thread(committed, kafka.bootstrap, group, t, 3) for t in (orders, events)
                ]
                if sum(ends[0]) == 6000 and sum(ends[1]) == 4000:
                    break
                await asyncio.sleep(0.5)
        source = running.runtime.connector
        assert isinstance(source, KafkaSource)
    finally:
        code = await running.stop()
        await orders_c.close()
        await events_c.close()
    assert code == 0
    await asyncio.sleep(0.5)  # nothing more may arrive after the counts were reached
    assert len(orders_c.messages) == 6000 and len(events_c.messages) == 4000  # exactly once
    for msgs, topic in ((got_orders, orders), (got_events, events)):
        positions = {(m.attributes["kafka.partition"], m.attributes["kafka.offset"]) for m in msgs}
        assert len(positions) == len(msgs)
        assert {m.attributes["kafka.partition"] for m in msgs} == {"0", "1", "2"}
        by_key: dict[str, list[int]] = defaultdict(list)
        for m in msgs:
            body = orjson.loads(m.payload)
            assert m.routing_key == body["key"]
            assert m.attributes["kafka.topic"] == topic
            assert m.attributes["trace"] == f"t-{body['i']}"
            assert m.attributes["origin"] == "test"
            assert int(m.attributes["kafka.timestamp"]) > 0
            assert m.attributes["kafka.timestamp_type"] == "create"
            by_key[body["key"]].append(body["seq"])
        assert len(by_key) == KEYS
        for key, seqs in by_key.items():
            assert seqs == list(range(1, len(seqs) + 1)), f"order of {key} broken in {topic}"
    # one Danube partition per key on the partitioned topic
    partition_of: dict[str, set[str]] = defaultdict(set)
    for m in got_orders:
        partition_of[m.routing_key].add(m.partition_topic)
    assert all(len(p) == 1 for p in partition_of.values())
    assert source.intake is not None and source.intake.counts.published == 10_000
