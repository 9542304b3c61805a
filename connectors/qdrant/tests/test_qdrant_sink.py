"""End to end in this process: embedded broker -> SinkRuntime -> QdrantSink -> Qdrant local mode on disk.

Local mode commits SQLite once per point; on a real disk that is an fsync per point (~15 ms here), so the
storage goes to /dev/shm when it exists (same engine and code path, no fsync cost).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from danube_connect_core.records import SinkRecord
from danube_connect_core.testing import make_config, produce, start_runtime, write_batch
from danube_connect_core.testing.waits import wait_for_status
from danube_sink_qdrant import QdrantSettings, QdrantSink
from danube_sink_qdrant.point_ids import point_id_for_message
from qdrant_client import QdrantClient

TOPIC = "/default/vectors"


@pytest.fixture
def store() -> Iterator[Path]:
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    path = Path(tempfile.mkdtemp(prefix="qdrant-sink-test-", dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def settings(store: Path, **mapping: Any) -> QdrantSettings:
    m = {
        "topic": TOPIC,
        "subscription": "qdrant",
        "collection": "vecs",
        "vector_field": "v",
        "dimension": 4,
        "distance": "Euclid",  # vectors are stored as sent (Cosine would normalise them)
    }
    m.update(mapping)
    return QdrantSettings.model_validate({"url": f"path:{store}", "topic_mappings": [m]})


def read_points(store: Path, collection: str = "vecs") -> list[Any]:
    client = QdrantClient(path=str(store))
    try:
        points, _ = client.scroll(collection, limit=100_000, with_vectors=True)
        return points
    finally:
        client.close()


async def create_topic(url: str, partitions: int | None = None) -> None:
    """Create the topic (a producer that sends nothing): a sink waits for its topic to exist."""
    await produce(url, TOPIC, [], partitions=partitions, reliable=True)


@contextlib.asynccontextmanager
async def subscribed(url: str, topic: str) -> AsyncIterator[Any]:
    """A consumer on ``topic`` (created if missing), subscribed before anything is published to it
    (a new subscription starts at the latest offset)."""
    from danube_connect_core.client import DanubeClient

    await produce(url, topic, [])
    client = DanubeClient(url)
    try:
        yield await client.subscribe(topic, "inspect", consumer_name="inspect")
    finally:
        await client.close()


async def receive(consumer: Any, n: int, within: float = 60) -> list[Any]:
    out = []
    async with asyncio.timeout(within):
        while len(out) < n:
            msg = await consumer.receive()
            await consumer.ack(msg)
            out.append(msg)
    return out


async def wait_points(sink: QdrantSink, n: int, within: float = 120) -> None:
    assert sink.engine is not None
    async with asyncio.timeout(within):
        while True:
            if (await sink.engine.call(lambda c: c.count("vecs", exact=True))).count >= n:
                return
            await asyncio.sleep(0.1)


async def test_400_records_on_4_partitions(broker: Any, store: Path) -> None:
    n = 400
    config = make_config(broker.url, "qdrant-400", settings(store), processing={"batch_size": 100})
    await create_topic(broker.url, 4)
    running = await start_runtime(QdrantSink(), config)
    await wait_for_status(running.port)
    payloads = [{"v": [float(i), 1.0, 2.0, 3.0], "i": i, "name": f"doc-{i}"} for i in range(n)]
    await produce(broker.url, TOPIC, payloads, partitions=4, reliable=True)
    await wait_points(running.runtime.connector, n)
    assert await running.stop() == 0
    points = await asyncio.to_thread(read_points, store)
    assert len(points) == n
    by_i = {p.payload["i"]: p for p in points}
    assert sorted(by_i) == list(range(n))
    for i in (0, 123, n - 1):
        assert by_i[i].payload == {"i": i, "name": f"doc-{i}"}
        assert by_i[i].vector == [float(i), 1.0, 2.0, 3.0]


async def test_invalid_records_are_dead_lettered_rest_written(broker: Any, store: Path) -> None:
    config = make_config(
        broker.url,
        "qdrant-dlq",
        settings(store, id_field="key", include_metadata=True),
        processing={
            "batch_size": 20,
            "batch_timeout_ms": 1500,
            "batch_idle_ms": 500,  # below the test broker's 2 s ack timeout
            "max_unacked_messages": 50,
        },
    )
    await create_topic(broker.url)
    running = await start_runtime(QdrantSink(), config)
    await wait_for_status(running.port)
    payloads: list[Any] = [{"v": [1, 2, 3, 4], "key": i} for i in range(20)]
    payloads[3] = {"v": [1, 2, 3], "key": 3}  # wrong dimension
    payloads[11] = {"v": [1, "x", 3, 4], "key": 11}  # not numeric
    payloads[15] = {"v": [1, 2, 3, 4], "key": 7}  # same key as record 7: one point (last write wins)
    async with subscribed(broker.url, "/default/qdrant-dlq-dlq") as dlq:
        # one at a time: record k lands at offset k, which the _danube.offset check below relies on
        await produce(broker.url, TOPIC, payloads, in_order=True)
        dead = await receive(dlq, 2)
    await wait_points(running.runtime.connector, 17)
    assert await running.stop() == 0
    reasons = sorted(m.attributes["error.reason"] for m in dead)
    assert "dimension 3, the collection expects 4" in reasons[0]
    assert "'v'[1] is not a number" in reasons[1]
    points = await asyncio.to_thread(read_points, store)
    assert sorted(p.id for p in points) == sorted(set(range(20)) - {3, 11, 15})
    by_id = {p.id: p for p in points}
    assert by_id[7].payload["_danube"]["offset"] in (7, 15)
    assert by_id[0].payload["key"] == 0


async def test_named_vectors_and_redelivery_overwrites(broker: Any, store: Path) -> None:
    s = settings(
        store,
        vector_field=None,
        vectors={"a": "va", "b": "vb"},
        dimension={"a": 2, "b": 3},
        include_metadata=True,
    )
    await create_topic(broker.url)
    running = await start_runtime(QdrantSink(), make_config(broker.url, "qdrant-named", s))
    await wait_for_status(running.port)
    await produce(broker.url, TOPIC, [{"va": [1, 0], "vb": [0, 0, 1], "i": i} for i in range(10)])
    await wait_points(running.runtime.connector, 10)
    sink: QdrantSink = running.runtime.connector
    assert sink.engine is not None
    stored, _ = await sink.engine.call(lambda c: c.scroll("vecs", limit=100))
    assert {p.id for p in stored} == {
        point_id_for_message(p.payload["_danube"]["message_id"]) for p in stored
    }
    # The same messages again, as a redelivery after a crash would bring them: same ids, new values.
    again = [
        SinkRecord(
            {"va": [0, 1], "vb": [1, 0, 0], "i": p.payload["i"]},
            TOPIC,
            p.payload["_danube"]["partition"],
            p.payload["_danube"]["offset"],
            0,
            "",
            {},
            None,
            None,
        )
        for p in stored
        if p.payload["_danube"]["offset"] != 0  # offset 0's id also carries producer identity
    ]
    assert len(again) == 9
    batch = await write_batch(sink, again)
    assert batch.written == again
    assert await running.stop() == 0
    points = await asyncio.to_thread(read_points, store)
    assert len(points) == 10
    assert {p.id for p in points} == {p.id for p in stored}
    for p in points:
        new = p.payload["_danube"]["offset"] != 0
        assert p.vector["a"] == ([0.0, 1.0] if new else [1.0, 0.0])
