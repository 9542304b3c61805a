"""Order per ordering key in the source delivery pipeline (``SourceEnvelope.ordering_key``).

Through the embedded broker: many keys, many records sent at once, read back in hand-over order per key,
polled and streamed (the end-to-end property; the embedded broker stores concurrent sends in either order
only now and then, so without lanes these would still pass most runs: of these only the single-key test,
which checks that one key never has two records in flight, tells lanes from none every time). With a
producer whose acks the test releases (the broker cannot be made to ack out
of order on demand): a record is sent only after the one before it of its key settled, different keys
go at once, a failed record stops the records of its key queued behind it, a cancelled waiter leaves its
place, the drain waits for queued records.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest
from danube_connect_core.client import DanubeError, MessageId
from danube_connect_core.config import ConnectorConfig
from danube_connect_core.connector import SourceConnector, SourceMode, SourceSender
from danube_connect_core.errors import Retryable, ShuttingDown
from danube_connect_core.ordering import OrderingLanes
from danube_connect_core.producer_config import ProducerConfig
from danube_connect_core.publisher import Published, Publisher
from danube_connect_core.records import Offset, SourceEnvelope, SourceRecord
from danube_connect_core.runtime_support import RuntimeServices
from danube_connect_core.source_pipeline import SourcePipeline
from danube_connect_core.testing import consume, make_config, produce, start_runtime

TOPIC = "/default/ordered"
KEYS = 40
PER_KEY = 25


def _interleaved(seed: int) -> list[tuple[str, int]]:
    """(key, seq) pairs, seq counting per key from 0, keys interleaved at random."""
    rng = random.Random(seed)
    pending = [f"k{k}" for k in range(KEYS) for _ in range(PER_KEY)]
    rng.shuffle(pending)
    seq: dict[str, int] = {}
    out = []
    for key in pending:
        out.append((key, seq.get(key, 0)))
        seq[key] = seq.get(key, 0) + 1
    return out


def _record(key: str, seq: int) -> SourceRecord:
    return SourceRecord.from_json(TOPIC, {"key": key, "seq": seq})


def _assert_in_order_per_key(messages: list[Any]) -> None:
    seen: dict[str, list[int]] = {}
    for m in messages:
        value = orjson.loads(m.payload)
        seen.setdefault(value["key"], []).append(value["seq"])
    assert sorted(seen) == sorted(f"k{k}" for k in range(KEYS))
    for key, seqs in seen.items():
        assert seqs == list(range(PER_KEY)), f"order of {key} broken: {seqs}"


class _Streaming(SourceConnector):
    mode = SourceMode.STREAMING

    def __init__(self) -> None:
        self.sender: SourceSender | None = None

    async def initialize(self, config: ConnectorConfig) -> None:
        pass

    async def producer_configs(self) -> list[ProducerConfig]:
        return [ProducerConfig(TOPIC, reliable_dispatch=True, max_in_flight=16)]

    async def start_streaming(self, sender: SourceSender) -> None:
        self.sender = sender


class _Polling(SourceConnector):
    def __init__(self, items: list[SourceEnvelope]) -> None:
        self.items = items
        self.committed: list[Offset] = []

    async def initialize(self, config: ConnectorConfig) -> None:
        pass

    async def producer_configs(self) -> list[ProducerConfig]:
        return [ProducerConfig(TOPIC, reliable_dispatch=True, max_in_flight=16)]

    async def poll(self) -> list[SourceEnvelope]:
        items, self.items = self.items, []
        return items

    async def commit(self, offsets: list[Offset]) -> None:
        self.committed.extend(offsets)


async def test_streamed_records_of_one_key_reach_the_broker_in_send_order(broker: Any) -> None:
    """1000 sends started at once over 40 keys: every key's records are stored in the order of the send
    calls, while records of different keys were published side by side (up to the bound)."""
    await produce(broker.url, TOPIC, [])
    await consume(broker.url, TOPIC, "reader", 0)
    source = _Streaming()
    running = await start_runtime(source, make_config(broker.url, "ordered-stream"), wait_started=True)
    sender = source.sender
    assert sender is not None
    sends = [
        asyncio.create_task(sender.send(SourceEnvelope(_record(k, s), ordering_key=k)))
        for k, s in _interleaved(1)
    ]
    published = await asyncio.gather(*sends)
    assert all(isinstance(p, Published) and not p.dead_lettered for p in published)
    pipeline = running.runtime.pipeline
    assert pipeline.peak_in_flight[TOPIC] > 1  # different keys did not wait for each other
    assert pipeline.lanes.keys == 0  # no state left behind for keys without records inside
    assert await running.stop() == 0
    _assert_in_order_per_key(await consume(broker.url, TOPIC, "reader", KEYS * PER_KEY))


async def test_records_of_a_single_key_are_published_one_at_a_time(broker: Any) -> None:
    """However many are sent at once, one key never has two records inside the bound."""
    await produce(broker.url, TOPIC, [])
    await consume(broker.url, TOPIC, "reader", 0)
    source = _Streaming()
    running = await start_runtime(source, make_config(broker.url, "one-key"), wait_started=True)
    assert source.sender is not None
    await source.sender.send_batch([SourceEnvelope(_record("k0", s), ordering_key="k0") for s in range(50)])
    assert running.runtime.pipeline.peak_in_flight[TOPIC] == 1
    assert await running.stop() == 0
    got = await consume(broker.url, TOPIC, "reader", 50)
    assert [orjson.loads(m.payload)["seq"] for m in got] == list(range(50))


async def test_polled_records_keep_order_per_key_and_commit_in_order(broker: Any) -> None:
    """A poll's list is published concurrently across keys, in list order per key; offsets are committed
    through the last one."""
    await produce(broker.url, TOPIC, [])
    await consume(broker.url, TOPIC, "reader", 0)
    pairs = _interleaved(2)
    items = [SourceEnvelope(_record(k, s), Offset("p", i), ordering_key=k) for i, (k, s) in enumerate(pairs)]
    source = _Polling(items)
    running = await start_runtime(source, make_config(broker.url, "ordered-poll"))
    last = Offset("p", len(pairs) - 1)
    async with asyncio.timeout(60):
        while last not in source.committed:  # noqa: ASYNC110 - the connector is plain state
            await asyncio.sleep(0.02)
    assert running.runtime.pipeline.peak_in_flight[TOPIC] > 1
    assert await running.stop() == 0
    positions = [o.position for o in source.committed]
    assert positions == sorted(positions)
    _assert_in_order_per_key(await consume(broker.url, TOPIC, "reader", KEYS * PER_KEY))


# -- with acks released by the test --------------------------------------------------------------------


class _HeldProducer:
    def __init__(self) -> None:
        self.pending: list[tuple[Any, asyncio.Future[Any]]] = []

    async def send(self, payload: bytes, *, attributes: Any = None, key: Any = None) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append((orjson.loads(payload), fut))
        return await fut

    async def close(self) -> None:
        pass


class _HeldClient:
    def __init__(self) -> None:
        self.producer = _HeldProducer()

    async def create_producer(self, *args: Any, **kwargs: Any) -> _HeldProducer:
        return self.producer


async def _held_pipeline() -> tuple[_HeldProducer, SourcePipeline]:
    client = _HeldClient()
    config = make_config("http://unused", "held", retry={"max_retries": 0})
    services = RuntimeServices(_Streaming(), config)
    pipeline = SourcePipeline(Publisher(client, config, services.metrics), config, services)
    await pipeline.publisher.add_topic(ProducerConfig(TOPIC, max_in_flight=8))
    pipeline.accepting = True
    return client.producer, pipeline


def _sent(producer: _HeldProducer) -> list[str]:
    return [f"{v['key']}{v['seq']}" for v, _ in producer.pending]


def _ack(producer: _HeldProducer, name: str) -> None:
    for i, (v, fut) in enumerate(producer.pending):
        if f"{v['key']}{v['seq']}" == name:
            fut.set_result(MessageId(TOPIC, None, i, 1))
            return
    raise AssertionError(f"{name} was not sent")


async def _settle() -> None:
    for _ in range(20):  # every task that can move gets to
        await asyncio.sleep(0)


def _deliver(pipeline: SourcePipeline, key: str | None, name: str, seq: int) -> asyncio.Task[Published]:
    envelope = SourceEnvelope(_record(name, seq), ordering_key=key)
    return asyncio.create_task(pipeline.deliver(envelope))


async def test_the_next_record_of_a_key_is_sent_only_after_the_previous_ack() -> None:
    producer, pipeline = await _held_pipeline()
    a0 = _deliver(pipeline, "a", "a", 0)
    a1 = _deliver(pipeline, "a", "a", 1)
    b0 = _deliver(pipeline, "b", "b", 0)
    n0 = _deliver(pipeline, None, "n", 0)
    n1 = _deliver(pipeline, None, "n", 1)
    await _settle()
    assert _sent(producer) == ["a0", "b0", "n0", "n1"]  # a1 waits for a0; the rest go at once
    _ack(producer, "b0")
    _ack(producer, "n1")
    await _settle()
    assert _sent(producer) == ["a0", "b0", "n0", "n1"] and not a1.done()
    _ack(producer, "a0")
    await _settle()
    assert _sent(producer) == ["a0", "b0", "n0", "n1", "a1"]
    _ack(producer, "a1")
    _ack(producer, "n0")
    results = await asyncio.gather(a0, a1, b0, n0, n1)
    assert all(isinstance(r, Published) for r in results)
    assert pipeline.lanes.keys == 0


async def test_a_dead_lettered_record_settles_and_lets_the_next_of_its_key_go() -> None:
    producer, pipeline = await _held_pipeline()
    bad = asyncio.create_task(
        pipeline.deliver(SourceEnvelope.invalid(_record("a", 0), "unreadable", ordering_key="a"))
    )
    a1 = _deliver(pipeline, "a", "a", 1)
    await _settle()
    assert _sent(producer) == ["a0"]  # the dead letter (same stub producer), a1 waits for it
    _ack(producer, "a0")
    await _settle()
    assert _sent(producer) == ["a0", "a1"]
    _ack(producer, "a1")
    assert (await bad).dead_lettered and not (await a1).dead_lettered


async def test_a_failed_record_stops_the_records_of_its_key_queued_behind_it() -> None:
    """No record of a key reaches the broker after an earlier one of that key that did not; other keys
    are unaffected, and once the key's queue is empty its next record goes normally."""
    producer, pipeline = await _held_pipeline()
    a0 = _deliver(pipeline, "a", "a", 0)
    a1 = _deliver(pipeline, "a", "a", 1)
    a2 = _deliver(pipeline, "a", "a", 2)
    b0 = _deliver(pipeline, "b", "b", 0)
    await _settle()
    producer.pending[0][1].set_exception(DanubeError("broker unavailable"))  # a0 fails for good
    _ack(producer, "b0")
    results = await asyncio.gather(a0, a1, a2, b0, return_exceptions=True)
    assert all(isinstance(r, Retryable) and not isinstance(r, ShuttingDown) for r in results[:3])
    assert "ordering key 'a'" in str(results[1]) and "ordering key 'a'" in str(results[2])
    assert isinstance(results[3], Published)
    assert _sent(producer) == ["a0", "b0"]  # a1 and a2 never reached the producer
    a3 = _deliver(pipeline, "a", "a", 3)
    await _settle()
    _ack(producer, "a3")
    assert isinstance(await a3, Published)


async def test_a_send_cancelled_while_waiting_leaves_its_place() -> None:
    producer, pipeline = await _held_pipeline()
    a0 = _deliver(pipeline, "a", "a", 0)
    a1 = _deliver(pipeline, "a", "a", 1)
    a2 = _deliver(pipeline, "a", "a", 2)
    await _settle()
    a1.cancel()
    await _settle()
    _ack(producer, "a0")
    await _settle()
    assert _sent(producer) == ["a0", "a2"]
    _ack(producer, "a2")
    assert isinstance(await a0, Published) and isinstance(await a2, Published)
    with pytest.raises(asyncio.CancelledError):
        await a1


async def test_a_record_cancelled_as_its_turn_came_breaks_its_lane() -> None:
    """Cancelled after the turn was handed to it but before it ran: it is never sent, so the record
    queued behind it must not be sent either (it would reach the broker before its predecessor)."""
    lanes = OrderingLanes()
    sent: list[int] = []

    async def send(seq: int) -> None:
        async with lanes.turn("k"):
            sent.append(seq)

    async with lanes.turn("k"):  # the test holds the key's turn
        second = asyncio.create_task(send(2))
        third = asyncio.create_task(send(3))
        await _settle()  # both queued behind the holder
    second.cancel()  # its turn is already set (the holder left), it has not run yet
    with pytest.raises(asyncio.CancelledError):
        await second
    with pytest.raises(Retryable, match="was not published"):
        await third
    assert sent == [] and lanes.keys == 0


async def test_the_drain_waits_for_queued_records_and_refuses_them_after_intake_stopped() -> None:
    """Intake stops with a record in flight and two queued behind it: the in-flight one is acknowledged,
    the queued ones are refused with ShuttingDown (never published, so the upstream still has them), and
    only then is the pipeline idle."""
    producer, pipeline = await _held_pipeline()
    tasks = [_deliver(pipeline, "a", "a", s) for s in range(3)]
    await _settle()
    pipeline.accepting = False
    idle = asyncio.create_task(pipeline.wait_idle())
    await _settle()
    assert not idle.done()
    _ack(producer, "a0")
    await idle
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], Published)
    assert all(isinstance(r, ShuttingDown) for r in results[1:])
    assert _sent(producer) == ["a0"]


class _GatedClient(_HeldClient):
    """Creates its producer only once the test opens ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def create_producer(self, *args: Any, **kwargs: Any) -> _HeldProducer:
        await self.gate
        return self.producer


async def test_records_for_an_undeclared_topic_keep_hand_over_order_while_its_producer_is_created() -> None:
    """A topic not in producer_configs() gets its producer on its first record. Records handed over while
    it is created wait for it; one handed over as it is ready (its task runs before theirs resume) must
    still queue behind them, by ordering key and by offset: it was sent first, and its offset committed
    while the earlier ones were not acknowledged."""
    client = _GatedClient()
    config = make_config("http://unused", "gated", retry={"max_retries": 0})
    services = RuntimeServices(_Streaming(), config)
    pipeline = SourcePipeline(Publisher(client, config, services.metrics), config, services)
    pipeline.accepting = True

    def deliver(seq: int) -> asyncio.Task[Published]:
        envelope = SourceEnvelope(_record("k", seq), Offset("p", seq), ordering_key="k")
        return asyncio.create_task(pipeline.deliver(envelope))

    early = [deliver(0), deliver(1)]
    await _settle()  # both wait for the producer
    client.gate.set_result(None)
    late = deliver(2)  # its first step runs in the same loop iteration as the producer's creation
    await _settle()
    producer = client.producer
    assert _sent(producer) == ["k0"]  # one at a time, the first handed over first
    _ack(producer, "k0")
    await _settle()
    assert pipeline.take_committable() == [Offset("p", 0)]
    _ack(producer, "k1")
    await _settle()
    assert _sent(producer) == ["k0", "k1", "k2"]
    _ack(producer, "k2")
    assert all(isinstance(r, Published) for r in await asyncio.gather(*early, late))
    assert pipeline.take_committable() == [Offset("p", 2)]
