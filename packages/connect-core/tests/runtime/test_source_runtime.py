"""SourceRuntime against the embedded broker: the one delivery pipeline of polled and streamed records —
local schema validation, dead letters with their reason, tolerance, the in-flight bound, offset commits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from danube_connect_core.config import ConnectorConfig
from danube_connect_core.connector import SourceConnector, SourceMode, SourceSender
from danube_connect_core.errors import Backpressure, InvalidData, Retryable, ShuttingDown
from danube_connect_core.producer_config import ProducerConfig
from danube_connect_core.publisher import Published, Publisher
from danube_connect_core.records import Offset, SourceEnvelope, SourceRecord
from danube_connect_core.runtime_support import RuntimeServices
from danube_connect_core.source_pipeline import PipelineSender, SourcePipeline
from danube_connect_core.testing import consume, http_get, make_config, produce, start_runtime
from danube_connect_core.testing.waits import wait_for_status

REPO = Path(__file__).resolve().parents[4]
TOPIC = "/default/payments"
VALID = {"event": "payment.succeeded", "amount": 100, "currency": "USD", "timestamp": 1}


def payment_schemas() -> list[dict[str, Any]]:
    return [
        {
            "topic": TOPIC,
            "subject": "payment-v1",
            "schema_type": "json_schema",
            "schema_file": str(REPO / "schemas" / "payment.json"),
        }
    ]


class ListSource(SourceConnector):
    """Polls a fixed list once."""

    def __init__(self, items: list[SourceEnvelope | SourceRecord]) -> None:
        self.items = items
        self.committed: list[Offset] = []

    async def initialize(self, config: ConnectorConfig) -> None:
        pass

    async def producer_configs(self) -> list[ProducerConfig]:
        return [ProducerConfig(TOPIC, reliable_dispatch=True)]

    async def poll(self) -> list[SourceEnvelope | SourceRecord]:
        items, self.items = self.items, []
        return items

    async def commit(self, offsets: list[Offset]) -> None:
        self.committed.extend(offsets)


class StreamSource(SourceConnector):
    mode = SourceMode.STREAMING

    def __init__(self) -> None:
        self.sender: SourceSender | None = None
        self.ready = asyncio.Event()

    async def initialize(self, config: ConnectorConfig) -> None:
        pass

    async def producer_configs(self) -> list[ProducerConfig]:
        return [ProducerConfig(TOPIC, reliable_dispatch=True)]

    async def start_streaming(self, sender: SourceSender) -> None:
        self.sender = sender
        self.ready.set()


DLQ = "/default/pay-source-dlq"


async def test_polled_invalid_records_are_dead_lettered_with_their_reason(broker: Any) -> None:
    """A polling source's invalid records go to the dead-letter topic with the schema's reason, never to
    their topic, and the poll's offsets are committed through them (nothing skipped, nothing lost)."""
    await produce(broker.url, TOPIC, [])  # create the topics and reader subscriptions first
    await consume(broker.url, TOPIC, "reader", 0)
    await produce(broker.url, DLQ, [])
    await consume(broker.url, DLQ, "reader", 0)
    bad_currency = {**VALID, "currency": "usd"}
    missing = {"event": "payment.failed"}
    items: list[SourceEnvelope | SourceRecord] = [
        SourceEnvelope.with_offset(SourceRecord.from_json(TOPIC, {**VALID, "amount": 1}), Offset("p", 1)),
        SourceEnvelope.with_offset(SourceRecord.from_json(TOPIC, bad_currency), Offset("p", 2)),
        SourceEnvelope.with_offset(SourceRecord.from_json(TOPIC, {**VALID, "amount": 3}), Offset("p", 3)),
        SourceEnvelope.with_offset(SourceRecord.from_json(TOPIC, missing), Offset("p", 4)),
        SourceEnvelope.with_offset(SourceRecord.from_bytes(TOPIC, b"{not json"), Offset("p", 5)),
        SourceEnvelope.with_offset(SourceRecord.from_json(TOPIC, {**VALID, "amount": 6}), Offset("p", 6)),
    ]
    source = ListSource(items)
    config = make_config(broker.url, "pay-source", schemas=payment_schemas())
    running = await start_runtime(source, config)
    async with asyncio.timeout(30):
        while Offset("p", 6) not in source.committed:  # noqa: ASYNC110 - the connector is plain state
            await asyncio.sleep(0.02)
    _, text = await asyncio.to_thread(http_get, running.port, "/metrics")
    assert await running.stop() == 0
    # a marker published afterwards bounds what the topic holds
    await produce(broker.url, TOPIC, [{**VALID, "amount": 999}])
    messages = await consume(broker.url, TOPIC, "reader", 4)
    amounts = [orjson.loads(m.payload)["amount"] for m in messages]
    # one poll's records are published concurrently (no ordering key): stored in any order, before the marker
    assert sorted(amounts[:3]) == [1, 3, 6] and amounts[3] == 999
    assert all(m.schema_id is not None for m in messages[:3])  # published with the registered schema
    letters = await consume(broker.url, DLQ, "reader", 3)
    by_offset = {m.attributes["error.source_offset"]: m for m in letters}
    assert sorted(by_offset) == ["p:2", "p:4", "p:5"]
    assert orjson.loads(by_offset["p:2"].payload) == bad_currency
    assert by_offset["p:5"].payload == b"{not json"
    for m in letters:
        assert m.attributes["error.kind"] == "invalid_data"
        assert m.attributes["error.topic"] == TOPIC
        assert m.attributes["error.connector"] == "pay-source"
    assert "usd" in by_offset["p:2"].attributes["error.reason"]
    assert "amount" in by_offset["p:4"].attributes["error.reason"]
    assert "JSON" in by_offset["p:5"].attributes["error.reason"]
    labels = '{connector="pay-source",topic="/default/payments"}'
    assert f"danube_connector_schema_validation_failures_total{labels} 3.0" in text
    assert f"danube_connector_dead_lettered_total{labels} 3.0" in text
    assert f"danube_connector_messages_sent_total{labels} 3.0" in text


async def test_polled_offset_waits_for_the_dead_letter_ack(broker: Any) -> None:
    """An invalid record's offset is committed only once its dead letter is acknowledged: with a
    dead-letter topic the broker refuses, the runtime exits 1 and commits nothing from that record on."""
    items: list[SourceEnvelope | SourceRecord] = [
        SourceEnvelope.with_offset(SourceRecord.from_json(TOPIC, {**VALID, "amount": 1}), Offset("p", 1)),
        SourceEnvelope.with_offset(SourceRecord.from_json(TOPIC, {"event": "x"}), Offset("p", 2)),
        SourceEnvelope.with_offset(SourceRecord.from_json(TOPIC, {**VALID, "amount": 3}), Offset("p", 3)),
    ]
    source = ListSource(items)
    config = make_config(
        broker.url,
        "dlq-refused",
        schemas=payment_schemas(),
        errors={"dead_letter_topic": "not a topic name"},
        retry={"max_retries": 1, "retry_backoff_ms": 10, "max_backoff_ms": 10},
    )
    running = await start_runtime(source, config)
    assert await running.wait(within=60) == 1
    assert source.committed == [Offset("p", 1)]


async def test_tolerance_none_stops_at_an_invalid_polled_record(broker: Any) -> None:
    dlq = "/default/strict-source-dlq"
    await produce(broker.url, dlq, [])
    await consume(broker.url, dlq, "reader", 0)
    items: list[SourceEnvelope | SourceRecord] = [
        SourceEnvelope.with_offset(SourceRecord.from_json(TOPIC, {**VALID, "amount": 1}), Offset("p", 1)),
        SourceEnvelope.with_offset(SourceRecord.from_json(TOPIC, {"event": "x"}), Offset("p", 2)),
    ]
    source = ListSource(items)
    config = make_config(broker.url, "strict-source", schemas=payment_schemas(), errors={"tolerance": "none"})
    running = await start_runtime(source, config)
    assert await running.wait(within=60) == 1
    assert Offset("p", 2) not in source.committed  # replayed after a restart, not skipped
    await produce(broker.url, dlq, [{"marker": True}])
    (marker,) = await consume(broker.url, dlq, "reader", 1)  # nothing was dead-lettered before it
    assert orjson.loads(marker.payload) == {"marker": True}


async def test_streaming_send_resolves_on_ack_and_dead_letters_invalid(broker_factory: Any) -> None:
    broker = await broker_factory()
    await produce(broker.url, TOPIC, [])
    await consume(broker.url, TOPIC, "reader", 0)
    await produce(broker.url, "/default/stream-source-dlq", [])
    await consume(broker.url, "/default/stream-source-dlq", "reader", 0)
    source = StreamSource()
    config = make_config(
        broker.url,
        "stream-source",
        schemas=payment_schemas(),
        retry={"max_retries": 0, "retry_backoff_ms": 10, "max_backoff_ms": 10},
    )
    running = await start_runtime(source, config)
    await asyncio.wait_for(source.ready.wait(), 30)
    assert source.sender is not None
    published = await source.sender.send(SourceRecord.from_json(TOPIC, VALID).with_key("k1"))
    assert isinstance(published, Published) and published.topic == TOPIC
    # acknowledged by the broker: a reader gets it
    (msg,) = await consume(broker.url, TOPIC, "reader", 1)
    assert orjson.loads(msg.payload) == VALID and msg.routing_key == "k1"
    rejected = await source.sender.send(SourceRecord.from_json(TOPIC, {**VALID, "amount": -5}))
    assert rejected.dead_lettered and rejected.topic == "/default/stream-source-dlq"
    assert rejected.dead_letter_reason is not None and "schema violation" in rejected.dead_letter_reason
    marked = await source.sender.send(
        SourceEnvelope.invalid(SourceRecord.from_bytes(TOPIC, b"\xff"), "not UTF-8 text")
    )
    assert marked.dead_letter_reason == "not UTF-8 text"
    letters = await consume(broker.url, "/default/stream-source-dlq", "reader", 2)
    assert [m.attributes["error.reason"] for m in letters][1] == "not UTF-8 text"
    assert letters[1].payload == b"\xff"
    batch = await source.sender.send_batch([SourceRecord.from_json(TOPIC, VALID) for _ in range(3)])
    assert len(batch) == 3
    await broker.stop()  # the broker goes away: send raises, it does not pretend
    with pytest.raises(Retryable):
        await asyncio.wait_for(source.sender.send(SourceRecord.from_json(TOPIC, VALID)), 60)
    await running.stop()


class _StubProducer:
    """Acks when the test says so: the broker cannot be made to ack out of order on demand."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Future[Any]] = []

    async def send(self, payload: bytes, *, attributes: Any = None, key: Any = None) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        return await fut

    async def close(self) -> None:
        pass


class _StubClient:
    def __init__(self) -> None:
        self.producer = _StubProducer()

    async def create_producer(self, *args: Any, **kwargs: Any) -> _StubProducer:
        return self.producer


async def _stub_pipeline(name: str, **overrides: Any) -> tuple[_StubClient, SourcePipeline]:
    client = _StubClient()
    config = make_config("http://unused", name, **overrides)
    services = RuntimeServices(ListSource([]), config)
    publisher = Publisher(client, config, services.metrics)
    pipeline = SourcePipeline(publisher, config, services)
    pipeline.accepting = True
    return client, pipeline


def _ack(fut: asyncio.Future[Any], n: int) -> None:
    from danube_connect_core.client import MessageId

    fut.set_result(MessageId(TOPIC, None, n, 1))


async def _until(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - plain state of the stub
            await asyncio.sleep(0)


async def test_commit_gets_only_contiguous_acknowledged_offsets() -> None:
    client, pipeline = await _stub_pipeline("ooo")
    await pipeline.publisher.add_topic(ProducerConfig(TOPIC))
    tasks = [
        asyncio.create_task(
            pipeline.deliver(SourceEnvelope.with_offset(SourceRecord.from_json(TOPIC, i), Offset("p", i)))
        )
        for i in (1, 2, 3)
    ]
    await _until(lambda: len(client.producer.pending) == 3)
    first, second, third = client.producer.pending
    _ack(third, 3)
    await tasks[2]
    assert pipeline.take_committable() == []  # 1 and 2 are not acknowledged yet
    _ack(first, 1)
    await tasks[0]
    assert pipeline.take_committable() == [Offset("p", 1)]
    _ack(second, 2)
    await tasks[1]
    assert pipeline.take_committable() == [Offset("p", 3)]


async def test_the_in_flight_bound_holds_back_further_sends() -> None:
    """Backpressure: with the bound full a send waits for a place (or, with wait=False, raises at once);
    records waiting for a place are not published, and intake stopping refuses them."""
    client, pipeline = await _stub_pipeline("bound")
    await pipeline.publisher.add_topic(ProducerConfig(TOPIC, max_in_flight=2))
    sender = PipelineSender(pipeline)
    tasks = [asyncio.create_task(sender.send(SourceRecord.from_json(TOPIC, i))) for i in range(5)]
    await _until(lambda: len(client.producer.pending) == 2)
    for _ in range(20):  # give the other three every chance to get past the bound: they must not
        await asyncio.sleep(0)
    assert len(client.producer.pending) == 2 and not any(t.done() for t in tasks)
    with pytest.raises(Backpressure):
        await sender.send(SourceRecord.from_json(TOPIC, 99), wait=False)
    _ack(client.producer.pending[0], 1)
    await _until(lambda: len(client.producer.pending) == 3)  # one place freed, one more record let in
    pipeline.accepting = False  # intake stops: the two still waiting for a place are refused
    for fut, n in zip(client.producer.pending[1:], (2, 3), strict=True):
        _ack(fut, n)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [isinstance(r, Published) for r in results] == [True, True, True, False, False]
    assert all(isinstance(r, ShuttingDown) for r in results[3:])
    assert pipeline.peak_in_flight[TOPIC] == 2


async def test_counter_source_commits_contiguously_through_the_broker(broker: Any, tmp_path: Path) -> None:
    from danube_connect_core.examples.counter_source import CounterSettings, CounterSource

    state = tmp_path / "counter.state"
    settings = CounterSettings(topic="/default/numbers", count=30, per_poll=7, state_file=state)
    source = CounterSource()
    running = await start_runtime(source, make_config(broker.url, "counter", settings))
    async with asyncio.timeout(30):
        while not source.committed or source.committed[-1] != Offset("counter", 30):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert await running.stop() == 0
    positions = [o.position for o in source.committed]
    assert positions == sorted(positions) and positions[-1] == 30
    assert state.read_text() == "30"


async def test_ready_recovers_without_traffic_once_the_broker_returns(
    broker_factory: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "broker-data"
    broker = await broker_factory(data_dir=data_dir)
    await produce(broker.url, TOPIC, [])
    source = StreamSource()
    config = make_config(
        broker.url,
        "probe-source",
        retry={"max_retries": 0, "retry_backoff_ms": 10, "max_backoff_ms": 10},
        processing={"metrics_port": 0, "health_check_interval_ms": 100},
    )
    running = await start_runtime(source, config, wait_started=True)
    assert source.sender is not None
    await source.sender.send(SourceRecord.from_json(TOPIC, VALID))
    assert (await asyncio.to_thread(http_get, running.port, "/ready"))[0] == 200
    await broker.stop()
    with pytest.raises(Retryable):
        await asyncio.wait_for(source.sender.send(SourceRecord.from_json(TOPIC, VALID)), 60)
    assert (await asyncio.to_thread(http_get, running.port, "/ready"))[0] == 503
    # Back on the same port and data: /ready turns 200 by itself, with no publish to prove it (a load
    # balancer routing by /ready would otherwise never send the traffic that could).
    await broker_factory(data_dir=data_dir, port=broker.port)
    await wait_for_status(running.port, within=60)
    assert await running.stop() == 0


async def test_streamed_sends_beyond_the_bound_all_arrive(broker: Any) -> None:
    """Through the real broker: 60 concurrent sends with a bound of 3 are all published, never more than
    3 inside the pipeline at once."""

    class Bounded(StreamSource):
        async def producer_configs(self) -> list[ProducerConfig]:
            return [ProducerConfig("/default/bounded", reliable_dispatch=True, max_in_flight=3)]

    await produce(broker.url, "/default/bounded", [])
    await consume(broker.url, "/default/bounded", "reader", 0)
    source = Bounded()
    running = await start_runtime(source, make_config(broker.url, "bounded"), wait_started=True)
    assert source.sender is not None
    sent = await source.sender.send_batch([SourceRecord.from_json("/default/bounded", i) for i in range(60)])
    assert len(sent) == 60 and not any(p.dead_lettered for p in sent)
    pipeline = running.runtime.pipeline
    assert pipeline.peak_in_flight["/default/bounded"] == 3
    assert await running.stop() == 0
    got = await consume(broker.url, "/default/bounded", "reader", 60)
    assert sorted(orjson.loads(m.payload) for m in got) == list(range(60))


async def test_tolerance_none_stops_at_an_invalid_streamed_record(broker: Any) -> None:
    source = StreamSource()
    config = make_config(broker.url, "strict-stream", schemas=payment_schemas(), errors={"tolerance": "none"})
    running = await start_runtime(source, config, wait_started=True)
    assert source.sender is not None
    with pytest.raises(InvalidData, match="schema violation"):
        await source.sender.send(SourceRecord.from_json(TOPIC, {"event": "x"}))
    assert await running.wait(within=60) == 1
