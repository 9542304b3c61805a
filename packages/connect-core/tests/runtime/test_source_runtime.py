"""SourceRuntime against the embedded broker: local schema validation, streaming acks, offset commits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from danube_connect_core.config import ConnectorConfig
from danube_connect_core.connector import SourceConnector, SourceMode, SourceSender
from danube_connect_core.errors import InvalidData, Retryable
from danube_connect_core.metrics import ConnectorMetrics
from danube_connect_core.producer_config import ProducerConfig
from danube_connect_core.publisher import Published, Publisher
from danube_connect_core.records import Offset, SourceEnvelope, SourceRecord
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


async def test_invalid_payloads_are_never_published_and_are_counted(broker: Any) -> None:
    await produce(broker.url, TOPIC, [])  # create the topic and a reader subscription first
    await consume(broker.url, TOPIC, "reader", 0)
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
    assert [orjson.loads(m.payload)["amount"] for m in messages] == [1, 3, 6, 999]
    assert messages[0].schema_id is not None  # published with the registered schema
    labels = '{connector="pay-source",topic="/default/payments"}'
    assert f"danube_connector_schema_validation_failures_total{labels} 3.0" in text
    assert (
        'danube_connector_messages_sent_total{connector="pay-source",topic="/default/payments"} 3.0' in text
    )


async def test_streaming_send_resolves_on_ack_and_raises_on_invalid(broker_factory: Any) -> None:
    broker = await broker_factory()
    await produce(broker.url, TOPIC, [])
    await consume(broker.url, TOPIC, "reader", 0)
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
    with pytest.raises(InvalidData, match="schema violation"):
        await source.sender.send(SourceRecord.from_json(TOPIC, {**VALID, "amount": -5}))
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


async def test_commit_gets_only_contiguous_acknowledged_offsets() -> None:
    from danube_connect_core.client import MessageId

    client = _StubClient()
    config = make_config("http://unused", "ooo")
    publisher = Publisher(client, config, ConnectorMetrics("ooo"))
    await publisher.add_topic(ProducerConfig(TOPIC))
    tasks = [
        asyncio.create_task(
            publisher.publish(SourceEnvelope.with_offset(SourceRecord.from_json(TOPIC, i), Offset("p", i)))
        )
        for i in (1, 2, 3)
    ]
    async with asyncio.timeout(5):
        while len(client.producer.pending) < 3:  # noqa: ASYNC110
            await asyncio.sleep(0)
    first, second, third = client.producer.pending

    def ack(fut: asyncio.Future[Any], n: int) -> None:
        fut.set_result(MessageId(TOPIC, None, n, 1))

    ack(third, 3)
    await tasks[2]
    assert publisher.offsets.take_committable() == []  # 1 and 2 are not acknowledged yet
    ack(first, 1)
    await tasks[0]
    assert publisher.offsets.take_committable() == [Offset("p", 1)]
    ack(second, 2)
    await tasks[1]
    assert publisher.offsets.take_committable() == [Offset("p", 3)]


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
