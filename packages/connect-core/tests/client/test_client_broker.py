"""Our client against the embedded broker (in process): produce/consume, partitions, routing, order,
schemas, errors, auth, close()."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from typing import Any

import jwt
import pytest
from danube_connect_core.client import (
    ClientOptions,
    DanubeClient,
    NonRetryableError,
    ReceivedMessage,
    RetriesExhausted,
    RetryPolicy,
    SchemaReference,
    SubscriptionType,
    fnv1a_64,
)
from danube_connect_core.client.errors import ClientClosed, DanubeError

FAST_RETRY = RetryPolicy(max_retries=2, base_backoff_ms=20, max_backoff_ms=100)


def topic_name(prefix: str = "t") -> str:
    return f"/default/{prefix}-{uuid.uuid4().hex[:8]}"


async def receive_n(consumer: Any, n: int, ack: bool = True, within_s: float = 30.0) -> list[ReceivedMessage]:
    out: list[ReceivedMessage] = []

    async def run() -> None:
        while len(out) < n:
            msg = await consumer.receive()
            out.append(msg)
            if ack:
                assert await consumer.ack(msg)

    await asyncio.wait_for(run(), within_s)
    return out


def client_tasks() -> set[asyncio.Task[Any]]:
    """Pending tasks the client started (all named ``danube-...``); the in-process broker's are ignored."""
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("danube-") and not t.done()}


async def test_plain_reliable_roundtrip_with_attributes_and_key(broker: Any) -> None:
    topic = topic_name()
    async with DanubeClient(broker.url) as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        consumer = await client.subscribe(topic, "sub", consumer_name="c")
        ids = [await producer.send(f"m{i}".encode(), attributes={"i": str(i)}, key=f"k{i}") for i in range(5)]
        assert [m.topic for m in ids] == [topic] * 5
        assert all(m.partition is None for m in ids)
        assert [m.offset for m in ids] == sorted(m.offset for m in ids)
        got = await receive_n(consumer, 5)
        assert [m.payload for m in got] == [f"m{i}".encode() for i in range(5)]
        assert [m.offset for m in got] == [0, 1, 2, 3, 4]
        first = got[0]
        assert first.attributes == {"i": "0"}
        assert first.routing_key == "k0"
        assert first.topic == first.partition_topic == topic
        assert first.partition is None
        assert first.producer_name == "p"
        assert first.subscription == "sub"
        assert first.schema_id is None and first.publish_time > 0


async def test_partitioned_produce_consume(broker: Any) -> None:
    topic = topic_name("parts")
    async with DanubeClient(broker.url) as client:
        producer = await client.create_producer(topic, "p", partitions=3, reliable=True)
        assert producer.partition_topics == [f"{topic}-part-{i}" for i in range(3)]
        consumer = await client.subscribe(topic, "sub", consumer_name="c")
        assert consumer.partition_topics == producer.partition_topics
        sent = [await producer.send(f"{i}".encode()) for i in range(30)]
        assert [m.partition for m in sent[:6]] == [0, 1, 2, 0, 1, 2]  # round-robin
        got = await receive_n(consumer, 30)
        assert sorted(int(m.payload) for m in got) == list(range(30))
        for m in got:
            assert m.topic == topic
            assert m.partition_topic == f"{topic}-part-{m.partition}"
            assert int(m.payload) % 3 == m.partition


def official_routes(keys: list[str], partitions: int) -> list[int]:
    """Partitions the official client's router picks, computed in a subprocess (docs/wire-contract.md
    §1)."""
    code = (
        "import json, sys\n"
        "from danube.message_router import MessageRouter\n"
        "keys, n = json.load(sys.stdin)\n"
        "r = MessageRouter(n)\n"
        "print(json.dumps([r.key_route(k) for k in keys]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps([keys, partitions]),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    routes: list[int] = json.loads(out.stdout)
    return routes


@pytest.mark.interop
async def test_key_routing_matches_official_client(broker: Any) -> None:
    keys = [f"key-{i}" for i in range(95)] + ["", "ключ", "🔑", "a" * 300, "user/42"]
    partitions = 7
    expected = await asyncio.to_thread(official_routes, keys, partitions)
    assert [fnv1a_64(k) % partitions for k in keys] == expected
    topic = topic_name("keys")
    async with DanubeClient(broker.url) as client:
        producer = await client.create_producer(topic, "p", partitions=partitions, reliable=True)
        consumer = await client.subscribe(topic, "sub", consumer_name="c")
        for i, key in enumerate(keys):
            mid = await producer.send(str(i).encode(), key=key)
            assert mid.partition == expected[i]
        got = await receive_n(consumer, len(keys))
        for m in got:
            assert m.partition == expected[int(m.payload)]
            assert m.routing_key == keys[int(m.payload)]


async def test_window_one_keeps_per_partition_order_for_5000(broker: Any) -> None:
    topic = topic_name("order")
    n = 5000
    async with DanubeClient(broker.url) as client:
        producer = await client.create_producer(topic, "p", partitions=2, reliable=True, max_in_flight=1)
        consumer = await client.subscribe(topic, "sub", consumer_name="c", queue_size=100)
        receiving = asyncio.create_task(receive_n(consumer, n, within_s=240))
        # all sends issued at once: the window (not the caller) must serialise them per partition
        ids = await asyncio.gather(*(producer.send(str(i).encode(), key=f"k{i % 10}") for i in range(n)))
        got = await receiving
    by_partition: dict[int | None, list[int]] = {}
    for m in got:
        by_partition.setdefault(m.partition, []).append(int(m.payload))
    assert sum(len(v) for v in by_partition.values()) == n
    for seq in by_partition.values():
        assert seq == sorted(seq)
    offsets: dict[int | None, list[int]] = {}
    for m in got:
        offsets.setdefault(m.partition, []).append(m.offset)
    for offs in offsets.values():
        assert offs == list(range(len(offs)))
    assert len({(m.topic, m.offset) for m in ids}) == n


async def test_schema_registry_and_producer_schema_stamping(broker: Any) -> None:
    subject = f"payments-{uuid.uuid4().hex[:6]}"
    v1 = json.dumps({"type": "object", "properties": {"a": {"type": "string"}}})
    v2 = json.dumps({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}})
    topic = topic_name("schema")
    async with DanubeClient(broker.url) as client:
        reg = client.schema_registry
        sid, ver, new = await reg.register(subject, "json_schema", v1, description="first")
        assert (ver, new) == (1, True)
        assert await reg.register(subject, "json_schema", v1) == (sid, 1, False)
        ok, errors = await reg.check_compatibility(subject, "json_schema", v2)
        assert ok, errors
        sid2, ver2, _ = await reg.register(subject, "json_schema", v2.encode())
        assert (sid2, ver2) == (sid, 2)
        latest = await reg.get_latest(subject)
        assert (latest.schema_id, latest.version, latest.subject) == (sid, 2, subject)
        assert json.loads(latest.definition) == json.loads(v2)  # unwrapped
        first = await reg.get_schema(sid, 1)
        assert json.loads(first.definition) == json.loads(v1)
        assert await reg.get_schema(sid, 1) is first  # cached by (id, version)
        assert [v.version for v in await reg.list_versions(subject)] == [1, 2]
        assert subject in [s.subject for s in await reg.list_subjects()]
        assert (await reg.set_compatibility_mode(subject, "full")).success

        for ref, expected in [
            (SchemaReference.latest(subject), 2),
            (SchemaReference.pinned(subject, 1), 1),
            (SchemaReference.minimum(subject, 2), 2),
        ]:
            producer = await client.create_producer(topic, f"p{expected}{ref.min_version}", schema=ref)
            consumer = await client.subscribe(topic, f"s-{uuid.uuid4().hex[:4]}", consumer_name="c")
            await producer.send(b'{"a": "x"}')
            (msg,) = await receive_n(consumer, 1)
            assert (msg.schema_id, msg.schema_version) == (sid, expected)
            await consumer.close()
            await producer.close()
        with pytest.raises(DanubeError):
            await client.create_producer(topic, "px", schema=SchemaReference.minimum(subject, 3))
        with pytest.raises(DanubeError):
            await client.create_producer(topic, "py", schema=SchemaReference.pinned(subject, 9))

        assert (await reg.configure_topic_schema(topic, subject, "enforce", True)).success
        config = await reg.get_topic_schema_config(topic)
        assert (config.schema_subject, config.validation_policy) == (subject, "enforce")
        assert (await reg.update_topic_validation_policy(topic, "warn", False)).success
        assert (await reg.get_topic_schema_config(topic)).validation_policy == "warn"
        with pytest.raises(NonRetryableError):
            await reg.get_latest(f"missing-{uuid.uuid4().hex[:6]}")


async def test_non_retryable_errors_fail_at_once(broker: Any) -> None:
    topic = topic_name("errs")
    async with DanubeClient(broker.url, ClientOptions(retry=FAST_RETRY)) as client:
        with pytest.raises(DanubeError, match="invalid topic name"):
            await client.create_producer("no-slashes", "p")
        with pytest.raises(NonRetryableError) as bad_name:
            await client.create_producer("/default/bad name!", "p")
        assert bad_name.value.code is not None and bad_name.value.code.name == "INVALID_ARGUMENT"
        await client.create_producer(topic, "p1", reliable=True)
        with pytest.raises(NonRetryableError) as mismatch:
            await client.create_producer(topic, "p2", reliable=False)
        assert mismatch.value.code is not None and mismatch.value.code.name == "FAILED_PRECONDITION"
        with pytest.raises(NonRetryableError, match="does not exist"):
            await client.subscribe(topic_name("missing"), "s", consumer_name="c")
        await client.subscribe(topic, "ex", consumer_name="c1", subscription_type=SubscriptionType.EXCLUSIVE)
        with pytest.raises(NonRetryableError) as denied:
            await client.subscribe(
                topic, "ex", consumer_name="c2", subscription_type=SubscriptionType.EXCLUSIVE
            )
        assert denied.value.code is not None and denied.value.code.name == "PERMISSION_DENIED"


async def test_nack_redelivers(broker: Any) -> None:
    topic = topic_name("nack")
    async with DanubeClient(broker.url) as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        consumer = await client.subscribe(topic, "sub", consumer_name="c")
        await producer.send(b"again")
        (first,) = await receive_n(consumer, 1, ack=False)
        assert await consumer.nack(first, delay_ms=10, reason="test")
        (second,) = await receive_n(consumer, 1)
        assert (second.payload, second.offset) == (b"again", first.offset)


async def test_broker_absent_at_start_fails_after_retries() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with DanubeClient(url, ClientOptions(retry=FAST_RETRY)) as client:
        with pytest.raises(RetriesExhausted) as producer_err:
            await client.create_producer("/default/t", "p")
        assert producer_err.value.attempts == 3
        assert "UNAVAILABLE" in str(producer_err.value)
        with pytest.raises(RetriesExhausted):
            await client.subscribe("/default/t", "s", consumer_name="c")


async def test_jwt_static_sync_and_async_tokens(broker_factory: Any) -> None:
    secret = "test-secret-" + uuid.uuid4().hex
    broker = await broker_factory(auth_secret=secret)
    token = jwt.encode({"sub": "tester"}, secret, algorithm="HS256")
    topic = topic_name("auth")
    async with DanubeClient(broker.url, ClientOptions(retry=FAST_RETRY)) as anonymous:
        with pytest.raises(NonRetryableError) as denied:
            await anonymous.create_producer(topic, "p")
        assert denied.value.code is not None and denied.value.code.name == "UNAUTHENTICATED"
        assert secret not in str(denied.value)

    calls = 0

    async def fetch_token() -> str:
        nonlocal calls
        calls += 1
        return token

    for source in (token, lambda: token, fetch_token):
        async with DanubeClient(broker.url, ClientOptions(token=source)) as client:
            producer = await client.create_producer(topic, "p", reliable=True)
            consumer = await client.subscribe(topic, f"s-{uuid.uuid4().hex[:4]}", consumer_name="c")
            await producer.send(b"secret-stuff")
            (msg,) = await receive_n(consumer, 1)
            assert msg.payload == b"secret-stuff"
    assert calls > 0


async def test_close_ends_everything_and_rejects_use(broker: Any) -> None:
    topic = topic_name("close")
    client = DanubeClient(broker.url)
    producer = await client.create_producer(topic, "p", partitions=2, reliable=True, max_in_flight=4)
    quiet = topic_name("quiet")
    await client.create_producer(quiet, "q", reliable=True)
    consumer = await client.subscribe(quiet, "sub", consumer_name="c")
    pending = asyncio.create_task(consumer.receive())
    sends = [asyncio.create_task(producer.send(b"x")) for _ in range(20)]
    await asyncio.sleep(0)
    await producer.close()  # waits for the sends already called
    assert all(t.done() and not t.cancelled() and t.exception() is None for t in sends)
    with pytest.raises(ClientClosed):
        await producer.send(b"late")
    await client.close()
    with pytest.raises(ClientClosed):
        await pending
    with pytest.raises(ClientClosed):
        await consumer.receive()
    assert [m async for m in consumer] == []
    with pytest.raises(ClientClosed):
        await client.create_producer(topic, "p2")
    await client.close()  # idempotent
    assert not client_tasks()


async def test_bounded_receive_queue_applies_backpressure(broker: Any) -> None:
    topic = topic_name("bp")
    async with DanubeClient(broker.url) as client:
        producer = await client.create_producer(topic, "p", reliable=False, max_in_flight=16)
        consumer = await client.subscribe(topic, "sub", consumer_name="c", queue_size=5)
        await asyncio.gather(*(producer.send(b"x" * 100) for _ in range(300)))
        await asyncio.sleep(0.3)
        assert consumer._queue.qsize() <= 5
        got = await receive_n(consumer, 5)
        assert len(got) == 5
