"""In one process against the real Kafka broker: SASL logins (PLAIN, SCRAM-SHA-256) through the
connector's settings, a refused login stopping it (exit 1, the reason logged without the password), and
the three start positions (earliest, latest, committed)."""

from __future__ import annotations

# ruff: noqa: ASYNC110 - polling the connector's counters, which have no event to wait on
import asyncio
import logging
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from danube_connect_core.testing import make_config, start_runtime
from danube_source_kafka.connector import KafkaSource
from danube_source_kafka.settings import KafkaSettings
from danube_source_kafka.testing import (
    SASL_USERS,
    DanubeCollector,
    KafkaBroker,
    Produced,
    create_topic,
    produce,
    unique,
    wait_ready,
)


def values(topic: str, start: int, count: int) -> list[Produced]:
    return [Produced(topic, b"k", orjson.dumps({"i": i})) for i in range(start, start + count)]


def settings(bootstrap: str, topic: str, group: str, **extra: Any) -> KafkaSettings:
    return KafkaSettings.model_validate(
        {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "topic_mappings": [{"kafka_topic": topic, "danube_topic": f"/default/{group}"}],
            **extra,
        }
    )


async def assigned(source: KafkaSource) -> None:
    async with asyncio.timeout(120):
        while source.intake is None or source.intake.counts.rebalances == 0:
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
async def test_sasl_login_from_the_settings(
    kafka: KafkaBroker, broker_factory: Any, mechanism: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, group = unique("sasl"), unique("g")
    await asyncio.to_thread(create_topic, kafka.bootstrap, topic)
    danube = await broker_factory()
    monkeypatch.setenv("BRIDGE_PASSWORD", SASL_USERS["alice"])
    login = {"mechanism": mechanism, "username": "alice", "password": "BRIDGE_PASSWORD"}
    s = settings(kafka.sasl_bootstrap, topic, group, sasl=login)
    assert s.effective_protocol == "SASL_PLAINTEXT"
    running = await start_runtime(KafkaSource(), make_config(danube.url, group, s))
    await wait_ready(running.port)
    collector = await DanubeCollector(danube.url, f"/default/{group}", "c").start()
    try:
        # produced once the collector's subscription exists (it starts at the end of the topic)
        await asyncio.to_thread(produce, kafka.bootstrap, values(topic, 0, 50))
        got = await collector.wait_for(50)
    finally:
        assert await running.stop() == 0
        await collector.close()
    assert [orjson.loads(m.payload)["i"] for m in got] == list(range(50))


async def test_a_refused_login_stops_the_source(
    kafka: KafkaBroker, broker_factory: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, group = unique("refused"), unique("g")
    await asyncio.to_thread(create_topic, kafka.bootstrap, topic)
    danube = await broker_factory()
    wrong = "not-" + SASL_USERS["bob"]
    monkeypatch.setenv("BRIDGE_PASSWORD", wrong)
    s = settings(kafka.sasl_bootstrap, topic, group, sasl={"username": "bob", "password": "BRIDGE_PASSWORD"})
    with caplog.at_level(logging.INFO):
        running = await start_runtime(KafkaSource(), make_config(danube.url, group, s))
        assert await running.wait(within=120) == 1
    assert "refused the credentials of bob" in caplog.text
    assert wrong not in caplog.text


async def test_latest_skips_what_was_there_before(kafka: KafkaBroker, broker_factory: Any) -> None:
    topic, group = unique("latest"), unique("g")
    await asyncio.to_thread(create_topic, kafka.bootstrap, topic)
    await asyncio.to_thread(produce, kafka.bootstrap, values(topic, 0, 20))
    danube = await broker_factory()
    source = KafkaSource()
    s = settings(kafka.bootstrap, topic, group, start_position="latest")
    running = await start_runtime(source, make_config(danube.url, group, s))
    try:
        await wait_ready(running.port)
        await assigned(source)
        # the partition's position is set (at the end) on the first fetch after the assignment
        await asyncio.sleep(1.0)
        await asyncio.to_thread(produce, kafka.bootstrap, values(topic, 20, 10))
        assert source.intake is not None
        async with asyncio.timeout(120):
            while source.intake.counts.published < 10:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        assert source.intake.counts.consumed == 10  # none of the 20 older records
    finally:
        assert await running.stop() == 0


async def test_committed_needs_a_committed_offset(
    kafka: KafkaBroker, broker_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    topic, group = unique("committed"), unique("g")
    await asyncio.to_thread(create_topic, kafka.bootstrap, topic)
    await asyncio.to_thread(produce, kafka.bootstrap, values(topic, 0, 20))
    danube = await broker_factory()
    s = settings(kafka.bootstrap, topic, group, start_position="committed")
    # no offset committed for the group yet: the source stops with the reason
    with caplog.at_level(logging.ERROR):
        running = await start_runtime(KafkaSource(), make_config(danube.url, group, s))
        assert await running.wait(within=120) == 1
    assert "no committed offset to start from (start_position = committed)" in caplog.text

    def commit_at_15() -> None:  # what the group's previous (Kafka) consumers left behind
        consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group})
        try:
            consumer.commit(offsets=[TopicPartition(topic, 0, 15)], asynchronous=False)
        finally:
            consumer.close()

    await asyncio.to_thread(commit_at_15)
    source = KafkaSource()
    running = await start_runtime(source, make_config(danube.url, group, s))
    try:
        await wait_ready(running.port)
        assert source.intake is not None
        async with asyncio.timeout(120):
            while source.intake.counts.published < 5:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        assert source.intake.counts.consumed == 5  # offsets 15..19, where the group stood
    finally:
        assert await running.stop() == 0
