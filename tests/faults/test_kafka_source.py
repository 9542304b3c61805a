"""Faults of the Kafka source (``danube-connect run kafka`` as a process) with the real Kafka broker
(one per session, danube_source_kafka.testing) and the embedded Danube broker:

- SIGKILL mid-stream, then a restart: no record is lost, and every duplicate comes from the window Danube
  acknowledged but the group had not committed when the process died (each duplicate's Kafka offset is at
  or after the committed offset at the kill); the counts are printed.
- Danube outage: the broker process is stopped for 6 s mid-stream and started again on the same port and
  data dir; the source retries (``[retry]``), nothing is lost, and the group's commits end at the end.
- Kafka absent when the source starts: it stays up and says not-ready, then consumes once Kafka is up.
- Bad input: values that are not JSON or break the topic's JSON Schema go to the dead-letter topic with
  their reason and Kafka coordinates; the valid ones reach the topic; the group commits past all of them.
"""

from __future__ import annotations

# ruff: noqa: ASYNC110 - polling collectors, which have no event to wait on
import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
from danube_connect_core.testing import ConnectorProcess
from danube_embedded_broker.testing import BrokerProcess
from danube_source_kafka.testing import (
    DanubeCollector,
    KafkaBroker,
    KafkaMissing,
    Produced,
    committed_offsets,
    create_topic,
    kafka_positions,
    produce,
    source_toml,
    unique,
    wait_ready,
)

pytestmark = pytest.mark.slow


def payloads(topic: str, start: int, count: int) -> list[Produced]:
    return [
        Produced(topic, f"k{i % 16}".encode(), orjson.dumps({"i": i, "pad": "x" * 64}))
        for i in range(start, start + count)
    ]


async def start(cfg: Path) -> ConnectorProcess:
    proc = ConnectorProcess("kafka", cfg).start()
    await wait_ready(await asyncio.to_thread(proc.metrics_port, 120))
    return proc


def distinct_per_partition(seen: Any, partitions: int) -> list[int]:
    return [len({o for p, o in seen if p == partition}) for partition in range(partitions)]


async def test_sigkill_mid_stream_loses_nothing(
    kafka: KafkaBroker, broker_factory: Any, tmp_path: Path
) -> None:
    total = 6000
    topic, group, name = unique("kill"), unique("g"), "kafka-kill"
    await asyncio.to_thread(create_topic, kafka.bootstrap, topic, 3)
    danube = await broker_factory()
    mapping = {"kafka_topic": topic, "danube_topic": f"/default/{name}", "partitions": 3}
    cfg = source_toml(tmp_path / "kill.toml", danube.url, kafka.bootstrap, name, group, [mapping])
    proc = await start(cfg)
    collector = await DanubeCollector(danube.url, f"/default/{name}", "c").start()
    try:
        await asyncio.to_thread(produce, kafka.bootstrap, payloads(topic, 0, total))
        async with asyncio.timeout(300):
            while len(collector.messages) < total // 4:
                await asyncio.sleep(0.02)
        proc.signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 30)
        at_kill = await asyncio.to_thread(committed_offsets, kafka.bootstrap, group, topic, 3)
        on_danube_at_kill = len(collector.messages)
        committed_at_kill = sum(max(0, o) for o in at_kill.values())
        assert committed_at_kill < total, "the kill came after the last commit"
        proc = await start(cfg)
        async with asyncio.timeout(300):
            while len(kafka_positions(collector.messages)) < total:
                await asyncio.sleep(0.05)
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0, proc.log_tail()
    finally:
        proc.kill()
        await collector.close()
    seen = kafka_positions(collector.messages)
    assert sum(distinct_per_partition(seen, 3)) == total  # none lost
    duplicates = {pos: n - 1 for pos, n in seen.items() if n > 1}
    print(
        f"\nKafka SIGKILL: {on_danube_at_kill} of {total} on Danube, {committed_at_kill} committed at the"
        f" kill; {sum(duplicates.values())} duplicates after the restart, all from the uncommitted window"
    )
    for partition, offset in duplicates:
        assert offset >= max(0, at_kill[partition]), (partition, offset, at_kill)


async def test_danube_stopped_6s_mid_stream_loses_nothing(kafka: KafkaBroker, tmp_path: Path) -> None:
    total = 3000
    topic, group, name = unique("outage"), unique("g"), "kafka-outage"
    await asyncio.to_thread(create_topic, kafka.bootstrap, topic, 3)
    danube = BrokerProcess(tmp_path / "danube")
    danube.start()
    mapping = {"kafka_topic": topic, "danube_topic": f"/default/{name}", "partitions": 3}
    # a retry budget longer than the outage: the source waits for Danube instead of exiting
    retry = "[retry]\nmax_retries = 30\nretry_backoff_ms = 200\nmax_backoff_ms = 2000\n"
    cfg = source_toml(tmp_path / "outage.toml", danube.url, kafka.bootstrap, name, group, [mapping], retry)
    proc = await start(cfg)
    before = await DanubeCollector(danube.url, f"/default/{name}", "c").start()
    after: DanubeCollector | None = None
    try:
        await asyncio.to_thread(produce, kafka.bootstrap, payloads(topic, 0, total // 2))
        async with asyncio.timeout(300):
            while len(before.messages) < total // 4:
                await asyncio.sleep(0.02)
        await before.close()
        await asyncio.to_thread(danube.stop)
        await asyncio.to_thread(produce, kafka.bootstrap, payloads(topic, total // 2, total // 2))
        await asyncio.sleep(6)
        await asyncio.to_thread(danube.start)
        # the same subscription again: it resumes after what the first collector acknowledged
        after = await DanubeCollector(danube.url, f"/default/{name}", "c").start()
        async with asyncio.timeout(300):
            while len(kafka_positions(before.messages + after.messages)) < total:
                await asyncio.sleep(0.05)
        async with asyncio.timeout(120):
            while (
                sum((await asyncio.to_thread(committed_offsets, kafka.bootstrap, group, topic, 3)).values())
                < total
            ):
                await asyncio.sleep(0.5)
        assert proc.proc is not None and proc.proc.poll() is None, proc.log_tail()
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0, proc.log_tail()
    finally:
        proc.kill()
        if after is not None:
            await after.close()
        danube.stop()
    seen = kafka_positions(before.messages + after.messages)
    assert sum(distinct_per_partition(seen, 3)) == total  # none lost
    print(f"\nDanube outage 6 s: {total} records, {sum(n - 1 for n in seen.values())} duplicates")


async def test_bad_values_are_dead_lettered_with_their_reason(
    kafka: KafkaBroker, broker_factory: Any, tmp_path: Path
) -> None:
    topic, group, name = unique("bad"), unique("g"), "kafka-bad"
    await asyncio.to_thread(create_topic, kafka.bootstrap, topic, 1)
    danube = await broker_factory()
    schema = tmp_path / "reading.json"
    schema.write_text('{"type": "object", "required": ["i"], "properties": {"i": {"type": "integer"}}}')
    extra = (
        "[[schemas]]\n"
        f'topic = "/default/{name}"\nsubject = "{name}-value"\nschema_type = "json_schema"\n'
        f'schema_file = "{schema}"\n'
    )
    mapping = {"kafka_topic": topic, "danube_topic": f"/default/{name}"}
    cfg = source_toml(tmp_path / "bad.toml", danube.url, kafka.bootstrap, name, group, [mapping], extra)
    proc = await start(cfg)
    good_c = await DanubeCollector(danube.url, f"/default/{name}", "c").start()
    dlq_c = await DanubeCollector(danube.url, f"/default/{name}-dlq", "d").start()
    values = [b'{"i": 1}', b"not json", b'{"i": "two"}', b'{"i": 3}', b"\xff\xfe", b'{"i": 4}']
    try:
        await asyncio.to_thread(produce, kafka.bootstrap, [Produced(topic, b"k", v) for v in values])
        good = await good_c.wait_for(3, within=120)
        dead = await dlq_c.wait_for(3, within=120)
        async with asyncio.timeout(120):
            while (await asyncio.to_thread(committed_offsets, kafka.bootstrap, group, topic, 1))[0] != 6:
                await asyncio.sleep(0.3)
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0, proc.log_tail()
    finally:
        proc.kill()
        await good_c.close()
        await dlq_c.close()
    assert [orjson.loads(m.payload)["i"] for m in good] == [1, 3, 4]
    assert sorted(int(m.attributes["kafka.offset"]) for m in dead) == [1, 2, 4]
    assert all(any(k.startswith("error.") for k in m.attributes) for m in dead), [m.attributes for m in dead]


async def test_kafka_absent_at_start_then_up(broker_factory: Any, tmp_path: Path) -> None:
    """Kafka not running when the source starts: it stays up, /ready 503 and /health 200 (degraded);
    once a Kafka broker listens on the address, the consumer starts and records flow."""
    from danube_connect_core.testing import http_get

    try:
        late = KafkaBroker(tmp_path / "late-kafka")
        late._classpath()  # the install is there (KafkaMissing otherwise)
    except KafkaMissing as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    topic, group, name = unique("late"), unique("g"), "kafka-late"
    danube = await broker_factory()
    mapping = {"kafka_topic": topic, "danube_topic": f"/default/{name}"}
    cfg = source_toml(tmp_path / "late.toml", danube.url, late.bootstrap, name, group, [mapping])
    proc = ConnectorProcess("kafka", cfg).start()
    try:
        port = await asyncio.to_thread(proc.metrics_port, 120)
        async with asyncio.timeout(120):
            while (await asyncio.to_thread(http_get, port, "/health"))[0] != 200:
                await asyncio.sleep(0.2)
        assert (await asyncio.to_thread(http_get, port, "/ready"))[0] == 503
        await asyncio.sleep(2)
        assert proc.proc is not None and proc.proc.poll() is None, proc.log_tail()
        await asyncio.to_thread(late.start)
        await asyncio.to_thread(create_topic, late.bootstrap, topic)
        await wait_ready(port, within=180)
        collector = await DanubeCollector(danube.url, f"/default/{name}", "c").start()
        try:
            await asyncio.to_thread(produce, late.bootstrap, payloads(topic, 0, 100))
            got = await collector.wait_for(100, within=180)
        finally:
            await collector.close()
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0, proc.log_tail()
    finally:
        proc.kill()
        await asyncio.to_thread(late.stop)
    assert sorted(orjson.loads(m.payload)["i"] for m in got) == list(range(100))
