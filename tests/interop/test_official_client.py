"""Interop: the official `danube-client` 0.5.0 against our embedded broker, alongside raw stubs.

The official client runs in subprocesses (scripts in `official/`, one JSON object per stdout line): its
wheel registers the same proto file names as our stubs in protobuf's default pool, so it never shares
this process (docs/wire-contract.md §1). Our side talks through the raw generated stubs (grpc.aio), not
through connect-core's client, so that these tests pin the broker's wire behaviour on their own.

One broker process serves the whole module (fast redelivery so the nack test is quick); every test
uses its own topics, named so that no topic is a prefix of another (the official consumer does not
filter TopicPartitions answers, see official/consume.py).

What danube-client 0.5.0 needed worked around here (see the comments in official/*.py):
- no DanubeClient.close(), and Producer/Consumer.close() only stop health checks: the scripts close the
  pooled grpc.aio channels themselves;
- Consumer.close() drops what is still in its receive queue (neither acked nor nacked), so the consume
  script only closes after every expected message was acked;
- Consumer.subscribe() uses the TopicPartitions answer unfiltered (a real broker's prefix match can add
  `/ns/t_v2` to `/ns/t`): topic names here are never prefixes of each other;
- RegisterSchema's version is dropped (execute() returns only schema_id): the script asks GetLatestSchema;
- schema definitions are returned still wrapped (`{"JsonSchema": {"raw_schema": ...}}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from danube_connect_core.proto import DanubeApi_pb2 as api
from danube_connect_core.proto import DanubeApi_pb2_grpc as _api_grpc
from danube_connect_core.proto import SchemaRegistry_pb2 as reg
from danube_connect_core.proto import SchemaRegistry_pb2_grpc as _reg_grpc

# The generated *_grpc modules carry no type information.
api_grpc: Any = _api_grpc
reg_grpc: Any = _reg_grpc

pytestmark = pytest.mark.interop

OFFICIAL = Path(__file__).resolve().parent / "official"
HANG_GUARD_S = 60.0  # a hang guard only: every step normally takes well under a few seconds
SUBSCRIPTION_SHARED = api.ConsumerRequest.Shared


# --------------------------------------------------------------------------------------------------
# The broker, the official-client scripts, and the raw-stub side
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from danube_embedded_broker.testing import BrokerProcess

    process = BrokerProcess(
        tmp_path_factory.mktemp("interop-broker"),
        port=0,
        # Fast redelivery for the nack test; the ack timeout stays at its default (30 s) so that a slow
        # consumer on a busy machine never causes a timeout redelivery in the exactly-once tests.
        args=["--redelivery-base-ms", "50", "--redelivery-max-ms", "500"],
    )
    url = process.start()
    try:
        yield url
    finally:
        code = process.stop()
    assert code == 0, f"the broker exited with {code} on SIGTERM"


def unique(name: str) -> str:
    """`name_<hex>`: no generated topic name is a prefix of another one."""
    return f"{name}_{uuid.uuid4().hex[:10]}"


@dataclass
class Script:
    """One official-client script in a subprocess; its stdout is a stream of JSON events."""

    name: str
    process: asyncio.subprocess.Process
    stderr_path: Path
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    async def start(cls, tmp_path: Path, script: str, url: str, *args: str) -> Script:
        stderr_path = tmp_path / f"{script}-{uuid.uuid4().hex[:6]}.stderr"
        with stderr_path.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(OFFICIAL / f"{script}.py"),
                "--url",
                url,
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                limit=4 * 1024 * 1024,
            )
        return cls(script, process, stderr_path)

    def describe(self) -> str:
        stderr = self.stderr_path.read_text(errors="replace")[-4000:]
        last = self.events[-3:]
        return f"{self.name}: last events {last}\nstderr tail:\n{stderr}"

    async def _next(self) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            return None
        event: dict[str, Any] = json.loads(line)
        self.events.append(event)
        if event["event"] == "error":
            raise AssertionError(
                f"{self.name} failed: {event['type']}: {event['message']}\n{self.describe()}"
            )
        return event

    async def wait_for(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(HANG_GUARD_S):
            while (event := await self._next()) is not None:
                if event["event"] == kind:
                    return event
        raise AssertionError(f"{self.name} ended before `{kind}`\n{self.describe()}")

    async def finish(self) -> list[dict[str, Any]]:
        """Read to the end; the script must exit 0 with a final `done` event. Returns all events."""
        async with asyncio.timeout(HANG_GUARD_S):
            while await self._next() is not None:
                pass
            code = await self.process.wait()
        assert code == 0, f"{self.name} exited with {code}\n{self.describe()}"
        assert self.events and self.events[-1]["event"] == "done", self.describe()
        return self.events

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@pytest.fixture
async def scripts(tmp_path: Path) -> AsyncIterator[Any]:
    """Start official-client scripts; any still running at the end of the test is killed."""
    started: list[Script] = []

    async def start(script: str, url: str, *args: str) -> Script:
        s = await Script.start(tmp_path, script, url, *args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()
        with contextlib.suppress(ProcessLookupError):
            await s.process.wait()


class Raw:
    """The broker through the raw generated grpc.aio stubs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.channel = grpc.aio.insecure_channel(url.removeprefix("http://"))
        self.producers = api_grpc.ProducerServiceStub(self.channel)
        self.consumers = api_grpc.ConsumerServiceStub(self.channel)
        self.discovery = api_grpc.DiscoveryStub(self.channel)
        self.schemas = reg_grpc.SchemaRegistryStub(self.channel)
        self._ids = iter(range(1, 1 << 62))

    def rid(self) -> int:
        return next(self._ids)

    async def create_producer(self, topic: str, name: str, *, reliable: bool) -> int:
        strategy = api.Reliable if reliable else api.NonReliable
        response = await self.producers.CreateProducer(
            api.ProducerRequest(
                request_id=self.rid(), producer_name=name, topic_name=topic, dispatch_strategy=strategy
            )
        )
        return int(response.producer_id)

    async def create_topic(self, topic: str, partitions: int, *, reliable: bool = True) -> list[str]:
        """Create a topic (or its `-part-N` topics) by attaching a producer: Subscribe never creates."""
        names = [f"{topic}-part-{i}" for i in range(partitions)] if partitions else [topic]
        for name in names:
            await self.create_producer(name, "interop-topic-creator", reliable=reliable)
        return names

    async def send(self, producer_id: int, topic: str, name: str, payload: bytes, **extra: Any) -> int:
        message = api.StreamMessage(
            request_id=self.rid(),
            msg_id=api.MsgID(producer_id=producer_id, topic_name=topic, broker_addr=self.url),
            payload=payload,
            publish_time=int(time.time() * 1000),
            producer_name=name,
            **extra,
        )
        response = await self.producers.SendMessage(message)
        return int(response.request_id)

    async def close(self) -> None:
        await self.channel.close()


@pytest.fixture
async def raw(broker_url: str) -> AsyncIterator[Raw]:
    r = Raw(broker_url)
    yield r
    await r.close()


@dataclass
class Delivery:
    consumer: str
    message: api.StreamMessage

    @property
    def payload(self) -> str:
        return str(self.message.payload.decode())

    @property
    def where(self) -> tuple[str, int]:
        return self.message.msg_id.topic_name, self.message.msg_id.topic_offset


class RawSubscription:
    """Consumers of one subscription over raw stubs: one ReceiveMessages stream per (consumer, topic)."""

    def __init__(self, raw: Raw, topics: list[str], subscription: str, consumer_names: list[str]) -> None:
        self.raw, self.topics, self.subscription, self.names = raw, topics, subscription, consumer_names
        self.queue: asyncio.Queue[Delivery | BaseException] = asyncio.Queue()
        self.calls: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, sub_type: int = SUBSCRIPTION_SHARED) -> None:
        for name in self.names:
            for topic in self.topics:
                response = await self.raw.consumers.Subscribe(
                    api.ConsumerRequest(
                        request_id=self.raw.rid(),
                        topic_name=topic,
                        consumer_name=name,
                        subscription=self.subscription,
                        subscription_type=sub_type,  # type: ignore[arg-type]
                    )
                )
                call = self.raw.consumers.ReceiveMessages(
                    api.ReceiveRequest(request_id=self.raw.rid(), consumer_id=response.consumer_id)
                )
                self.calls.append(call)
                self.tasks.append(asyncio.create_task(self._pump(name, call)))

    async def _pump(self, name: str, call: Any) -> None:
        try:
            async for message in call:
                await self.queue.put(Delivery(name, message))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # surfaces in collect()
            await self.queue.put(exc)
        else:
            await self.queue.put(
                AssertionError("a ReceiveMessages stream ended while messages were expected")
            )

    async def ack(self, delivery: Delivery) -> None:
        await self.raw.consumers.Ack(
            api.AckRequest(
                request_id=delivery.message.request_id,
                msg_id=delivery.message.msg_id,
                subscription_name=self.subscription,
            )
        )

    async def collect(self, expect: int, *, linger: float = 0.5, ack: bool = True) -> list[Delivery]:
        """Deliveries until `expect` distinct payloads arrived (acking each), then `linger` seconds more."""
        deliveries: list[Delivery] = []
        distinct: set[str] = set()
        async with asyncio.timeout(HANG_GUARD_S):
            while len(distinct) < expect:
                delivery = await self._get()
                deliveries.append(delivery)
                distinct.add(delivery.payload)
                if ack:
                    await self.ack(delivery)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(linger):
                while True:
                    delivery = await self._get()
                    deliveries.append(delivery)
                    if ack:
                        await self.ack(delivery)
        return deliveries

    async def _get(self) -> Delivery:
        # Queue.get() is safe to cancel (the linger timeout): no item is lost.
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        for call in self.calls:
            call.cancel()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def fnv1a_64(key: str) -> int:
    h = 0xCBF29CE484222325
    for byte in key.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def assert_contiguous_offsets(where: list[tuple[str, int]]) -> dict[str, int]:
    """Each topic's offsets are exactly 0..n-1 (no gap, no duplicate); returns n per topic."""
    per_topic: dict[str, list[int]] = {}
    for topic, offset in where:
        per_topic.setdefault(topic, []).append(offset)
    for topic, offsets in per_topic.items():
        assert sorted(offsets) == list(range(len(offsets))), f"{topic}: offsets {sorted(offsets)}"
    return {topic: len(offsets) for topic, offsets in per_topic.items()}


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


async def test_official_reliable_producer_and_consumer(broker_url: str, raw: Raw, scripts: Any) -> None:
    """Official producer -> official consumer (Exclusive) and, in a second subscription, raw stubs."""
    topic = f"/default/{unique('reliable')}"
    await raw.create_topic(topic, 0)
    official = await scripts(
        "consume", broker_url, "--topic", topic, "--subscription", "official", "--sub-type", "exclusive",
        "--expect", "20",
    )  # fmt: skip
    await official.wait_for("subscribed")
    ours = RawSubscription(raw, [topic], "raw", ["raw-consumer"])
    await ours.start()

    producer = await scripts(
        "produce", broker_url, "--topic", topic, "--count", "20", "--reliable", "--name", "official-reliable",
        "--attr", "origin=official", "--attr", "kind=interop",
    )  # fmt: skip
    sent = (await producer.finish())[-1]
    assert sent["sent"] == 20

    await official.finish()
    received = official.of("message")
    expected = [f"m-{i}" for i in range(20)]
    assert [m["payload"] for m in received] == expected  # one topic, one consumer: in order
    assert [m["offset"] for m in received] == list(range(20))
    assert {m["topic"] for m in received} == {topic}
    assert {m["producer_name"] for m in received} == {"official-reliable"}
    assert all(m["attributes"] == {"origin": "official", "kind": "interop"} for m in received)
    assert all(m["schema_id"] is None and m["schema_version"] is None for m in received)
    done = official.events[-1]
    assert (done["distinct"], done["deliveries"], done["acks"], done["nacks"]) == (20, 20, 20, 0)

    deliveries = await ours.collect(20)
    await ours.close()
    assert [d.payload for d in deliveries] == expected
    assert [d.where for d in deliveries] == [(topic, i) for i in range(20)]
    assert all(d.message.subscription_name == "raw" for d in deliveries)


async def test_official_non_reliable_producer_and_consumer(broker_url: str, raw: Raw, scripts: Any) -> None:
    """NonReliable: every message reaches a subscribed consumer (well under its buffer), offset always 0."""
    topic = f"/default/{unique('nonreliable')}"
    await raw.create_topic(topic, 0, reliable=False)
    official = await scripts(
        "consume", broker_url, "--topic", topic, "--subscription", "official-nr", "--expect", "20"
    )
    await official.wait_for("subscribed")
    ours = RawSubscription(raw, [topic], "raw-nr", ["raw-consumer"])
    await ours.start()

    producer = await scripts("produce", broker_url, "--topic", topic, "--count", "20", "--prefix", "nr-")
    assert (await producer.finish())[-1]["sent"] == 20

    await official.finish()
    received = official.of("message")
    assert sorted(m["payload"] for m in received) == sorted(f"nr-{i}" for i in range(20))
    assert {m["offset"] for m in received} == {0}

    deliveries = await ours.collect(20)
    await ours.close()
    assert sorted(d.payload for d in deliveries) == sorted(f"nr-{i}" for i in range(20))
    assert {d.message.msg_id.topic_offset for d in deliveries} == {0}


async def test_non_reliable_producer_on_reliable_topic_is_refused(
    broker_url: str, raw: Raw, scripts: Any
) -> None:
    """A dispatch strategy different from the topic's -> FAILED_PRECONDITION (the script reports it)."""
    topic = f"/default/{unique('strategy')}"
    await raw.create_topic(topic, 0, reliable=True)
    producer = await scripts("produce", broker_url, "--topic", topic, "--count", "1")
    with pytest.raises(AssertionError, match="FAILED_PRECONDITION"):
        await producer.wait_for("ready")


def assert_exactly_once(
    partitions: list[str], deliveries: list[tuple[str, str, str, int]], count: int
) -> None:
    """Shared checks of the 1,000-message tests; deliveries are (consumer, payload, topic, offset)."""
    payloads = [payload for _, payload, _, _ in deliveries]
    duplicates = [p for p, n in Counter(payloads).items() if n > 1]
    assert not duplicates, f"{len(duplicates)} payloads delivered more than once, e.g. {duplicates[:5]}"
    assert sorted(payloads) == sorted(f"m-{i}" for i in range(count))
    per_partition = assert_contiguous_offsets([(t, o) for _, _, t, o in deliveries])
    # The official producer routes round-robin from partition 0.
    assert per_partition == {p: count // 3 + (1 if i < count % 3 else 0) for i, p in enumerate(partitions)}
    assert len({consumer for consumer, _, _, _ in deliveries}) == 2, "Shared: both consumers get messages"


async def nothing_left_then_sentinels(
    raw: Raw, partitions: list[str], subscription: str, next_offset: Mapping[str, int]
) -> None:
    """The subscription acked everything: a fresh consumer of it gets only new sentinels, in offset order
    (an unacked message would be redelivered to it at once, ahead of the sentinel of its partition)."""
    late = RawSubscription(raw, partitions, subscription, ["late-consumer"])
    await late.start()
    producer_ids = {p: await raw.create_producer(p, "sentinel", reliable=True) for p in partitions}
    for p in partitions:
        await raw.send(producer_ids[p], p, "sentinel", f"sentinel-{p}".encode())
    deliveries = await late.collect(len(partitions), linger=0.3)
    await late.close()
    assert sorted(d.payload for d in deliveries) == sorted(f"sentinel-{p}" for p in partitions)
    assert {d.where for d in deliveries} == {(p, next_offset[p]) for p in partitions}


async def test_official_producer_1000_reliable_to_3_partitions_official_shared_consumers(
    broker_url: str, raw: Raw, scripts: Any
) -> None:
    """Done-when: 1,000 reliable messages from the official client to a 3-partition topic reach a Shared
    subscription, subscribed first (two official consumers), exactly once, and are acked."""
    count = 1000
    topic = f"/default/{unique('orders')}"
    partitions = await raw.create_topic(topic, 3)
    consumer = await scripts(
        "consume", broker_url, "--topic", topic, "--subscription", "shared-official", "--consumers", "2",
        "--expect", str(count), "--linger", "1.0",
    )  # fmt: skip
    subscribed = await consumer.wait_for("subscribed")
    assert subscribed["partitions"] == partitions

    producer = await scripts(
        "produce", broker_url, "--topic", topic, "--partitions", "3", "--count", str(count), "--reliable"
    )
    ready = await producer.wait_for("ready")
    assert ready["topics"] == partitions
    assert (await producer.finish())[-1]["sent"] == count

    await consumer.finish()
    done = consumer.events[-1]
    assert (done["distinct"], done["deliveries"], done["acks"], done["nacks"]) == (count, count, count, 0)
    deliveries = [(str(m["consumer"]), m["payload"], m["topic"], m["offset"]) for m in consumer.of("message")]
    assert_exactly_once(partitions, deliveries, count)
    offsets = Counter(t for _, _, t, _ in deliveries)
    await nothing_left_then_sentinels(raw, partitions, "shared-official", offsets)


async def test_official_producer_1000_reliable_to_3_partitions_raw_shared_consumers(
    broker_url: str, raw: Raw, scripts: Any
) -> None:
    """The same with the Shared subscription on our side (raw stubs, two consumers)."""
    count = 1000
    topic = f"/default/{unique('payments')}"
    partitions = await raw.create_topic(topic, 3)
    ours = RawSubscription(raw, partitions, "shared-raw", ["raw-a", "raw-b"])
    await ours.start()

    producer = await scripts(
        "produce", broker_url, "--topic", topic, "--partitions", "3", "--count", str(count), "--reliable"
    )
    collecting = asyncio.create_task(ours.collect(count, linger=1.0))
    assert (await producer.finish())[-1]["sent"] == count
    deliveries = await collecting
    await ours.close()
    rows = [(d.consumer, d.payload, *d.where) for d in deliveries]
    assert_exactly_once(partitions, rows, count)
    offsets = Counter(d.message.msg_id.topic_name for d in deliveries)
    await nothing_left_then_sentinels(raw, partitions, "shared-raw", offsets)


async def test_raw_producer_to_official_shared_consumer_on_3_partitions(
    broker_url: str, raw: Raw, scripts: Any
) -> None:
    """The other direction: our side sends 1,000 reliable messages (keyed, FNV-1a routing) to 3 partitions,
    the official consumer (Shared, subscribed first) receives and acks each exactly once."""
    count = 1000
    topic = f"/default/{unique('events')}"
    partitions = await raw.create_topic(topic, 3)
    consumer = await scripts(
        "consume", broker_url, "--topic", topic, "--subscription", "official-in", "--expect", str(count),
    )  # fmt: skip
    await consumer.wait_for("subscribed")
    producer_ids = [
        await raw.create_producer(p, f"raw-producer-{i}", reliable=True) for i, p in enumerate(partitions)
    ]
    expected_partition = {}
    for i in range(count):
        key = f"user-{i % 7}"
        part = fnv1a_64(key) % 3
        expected_partition[f"raw-{i}"] = partitions[part]
        await raw.send(
            producer_ids[part], partitions[part], f"raw-producer-{part}", f"raw-{i}".encode(),
            routing_key=key, attributes={"i": str(i)},
        )  # fmt: skip
    await consumer.finish()
    received = consumer.of("message")
    assert Counter(m["payload"] for m in received) == Counter(f"raw-{i}" for i in range(count))
    assert all(m["topic"] == expected_partition[m["payload"]] for m in received)
    assert all(m["routing_key"] == f"user-{int(m['attributes']['i']) % 7}" for m in received)
    done = consumer.events[-1]
    assert (done["distinct"], done["deliveries"], done["acks"], done["nacks"]) == (count, count, count, 0)
    per_partition = assert_contiguous_offsets([(m["topic"], m["offset"]) for m in received])
    assert sorted(per_partition) == partitions  # the keys spread over every partition
    await nothing_left_then_sentinels(raw, partitions, "official-in", per_partition)


async def test_official_key_routing_matches_fnv1a(broker_url: str, raw: Raw, scripts: Any) -> None:
    """Official keyed sends land on partition FNV-1a-64(key) % N, with the key on the message."""
    topic = f"/default/{unique('keyed')}"
    partitions = await raw.create_topic(topic, 3)
    ours = RawSubscription(raw, partitions, "keyed", ["raw-consumer"])
    await ours.start()
    producer = await scripts(
        "produce", broker_url, "--topic", topic, "--partitions", "3", "--count", "40", "--reliable",
        "--keys", "5", "--prefix", "k-",
    )  # fmt: skip
    await producer.finish()
    deliveries = await ours.collect(40)
    await ours.close()
    assert sorted(d.payload for d in deliveries) == sorted(f"k-{i}" for i in range(40))
    for d in deliveries:
        key = f"key-{int(d.payload[2:]) % 5}"
        assert d.message.routing_key == key
        assert d.message.msg_id.topic_name == partitions[fnv1a_64(key) % 3]


async def test_official_consumer_nack_redelivery(broker_url: str, raw: Raw, scripts: Any) -> None:
    """Each message nacked once by the official consumer comes back (same offset) and is then acked."""
    topic = f"/default/{unique('nacks')}"
    await raw.create_topic(topic, 0)
    consumer = await scripts(
        "consume", broker_url, "--topic", topic, "--subscription", "nacking", "--expect", "5",
        "--nack-first", "--nack-delay-ms", "0", "--linger", "0.5",
    )  # fmt: skip
    await consumer.wait_for("subscribed")
    producer = await scripts("produce", broker_url, "--topic", topic, "--count", "5", "--reliable")
    await producer.finish()
    await consumer.finish()
    done = consumer.events[-1]
    assert (done["distinct"], done["deliveries"], done["acks"], done["nacks"]) == (5, 10, 5, 5)
    deliveries = Counter((m["payload"], m["offset"]) for m in consumer.of("message"))
    assert deliveries == {(f"m-{i}", i): 2 for i in range(5)}
    assert sorted(n["payload"] for n in consumer.of("nacked")) == [f"m-{i}" for i in range(5)]


async def test_raw_nack_of_official_messages(broker_url: str, raw: Raw, scripts: Any) -> None:
    """Our side nacks what the official producer sent; the broker redelivers it to us."""
    topic = f"/default/{unique('rawnack')}"
    await raw.create_topic(topic, 0)
    ours = RawSubscription(raw, [topic], "raw-nacking", ["raw-consumer"])
    await ours.start()
    producer = await scripts("produce", broker_url, "--topic", topic, "--count", "3", "--reliable")
    await producer.finish()
    first = await ours.collect(3, ack=False, linger=0)
    for d in first:
        await raw.consumers.Nack(
            api.NackRequest(
                request_id=d.message.request_id,
                msg_id=d.message.msg_id,
                subscription_name="raw-nacking",
                delay_ms=0,
                reason="raw nack",
            )
        )
    again = await ours.collect(3, linger=0.3)
    await ours.close()
    assert sorted(d.where for d in first) == sorted(d.where for d in again) == [(topic, i) for i in range(3)]


SCHEMA_V1 = {
    "type": "object",
    "properties": {"i": {"type": "integer"}, "prefix": {"type": "string"}},
    "required": ["i"],
}
SCHEMA_V2 = {  # backward compatible: one more optional property
    "type": "object",
    "properties": {"i": {"type": "integer"}, "prefix": {"type": "string"}, "note": {"type": "string"}},
    "required": ["i"],
}


def unwrap_definition(text: str) -> Any:
    """The definition as JSON; a real broker wraps it as {"JsonSchema": {"raw_schema": ...}} (§2)."""
    value = json.loads(text)
    if isinstance(value, dict) and len(value) == 1:
        (inner,) = value.values()
        if isinstance(inner, dict) and "raw_schema" in inner:
            return json.loads(inner["raw_schema"])
    return value


async def test_official_schema_registry_and_schema_bound_producer(
    broker_url: str, raw: Raw, scripts: Any
) -> None:
    subject = unique("orders-value")
    registry = await scripts(
        "schema_registry", broker_url, "--subject", subject, "--type", "json_schema",
        "--schema", json.dumps(SCHEMA_V1), "--schema", json.dumps(SCHEMA_V2),
    )  # fmt: skip
    await registry.finish()
    registered = registry.of("registered")
    schema_id = registered[0]["schema_id"]
    assert [r["schema_id"] for r in registered] == [schema_id, schema_id]  # the id names the subject
    assert [r["latest_version"] for r in registered] == [1, 2]
    reregistered = registry.of("reregistered")[0]
    assert reregistered["schema_id"] == schema_id and reregistered["versions"] == [1, 2]
    (latest,) = registry.of("latest")
    assert (latest["subject"], latest["version"], latest["schema_id"]) == (subject, 2, schema_id)
    assert latest["schema_type"] == "json_schema"
    # Like a real broker, the definition comes back wrapped; the official client hands the wrapper to
    # its caller as is (SchemaInfo.schema_definition), it does not unwrap it.
    assert list(json.loads(latest["definition"])) == ["JsonSchema"]
    assert unwrap_definition(latest["definition"]) == SCHEMA_V2
    assert registry.of("versions")[0]["versions"] == [1, 2]
    by_id = registry.of("by_id")
    assert [(s["version"], unwrap_definition(s["definition"])) for s in by_id] == [
        (1, SCHEMA_V1),
        (2, SCHEMA_V2),
    ]
    assert by_id[0]["fingerprint"] != by_id[1]["fingerprint"]
    assert registry.of("compatible")[0]["is_compatible"] is True

    # What the official client registered, seen through our stubs.
    ours = await raw.schemas.GetLatestSchema(reg.GetLatestSchemaRequest(subject=subject))
    assert (ours.schema_id, ours.version, ours.subject) == (schema_id, 2, subject)

    # Producers bound to the subject: latest (v2) and pinned v1; the messages carry schema_id/version.
    topic = f"/default/{unique('typed')}"
    await raw.create_topic(topic, 0)
    sub = RawSubscription(raw, [topic], "typed", ["raw-consumer"])
    await sub.start()
    latest_producer = await scripts(
        "produce", broker_url, "--topic", topic, "--count", "3", "--reliable", "--schema-subject", subject,
        "--payload-format", "json", "--prefix", "latest", "--name", "typed-latest",
    )  # fmt: skip
    ready = await latest_producer.wait_for("ready")
    assert (ready["schema_id"], ready["schema_version"]) == (schema_id, 2)
    await latest_producer.finish()
    pinned_producer = await scripts(
        "produce", broker_url, "--topic", topic, "--count", "3", "--reliable", "--schema-subject", subject,
        "--schema-version", "1", "--payload-format", "json", "--prefix", "pinned", "--name", "typed-pinned",
    )  # fmt: skip
    await pinned_producer.finish()

    deliveries = await sub.collect(6)
    await sub.close()
    seen = sorted(
        (
            json.loads(d.payload)["prefix"],
            json.loads(d.payload)["i"],
            d.message.schema_id,
            d.message.schema_version,
        )
        for d in deliveries
    )
    assert all(d.message.HasField("schema_id") and d.message.HasField("schema_version") for d in deliveries)
    assert seen == sorted(
        [("latest", i, schema_id, 2) for i in range(3)] + [("pinned", i, schema_id, 1) for i in range(3)]
    )
