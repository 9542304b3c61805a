"""start_runtime(..., wait_started=True) / wait_started(), and ShuttingDown from a stopped sender."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from danube_connect_core.config import ConnectorConfig
from danube_connect_core.connector import SourceConnector, SourceMode, SourceSender
from danube_connect_core.consumer_config import ConsumerConfig
from danube_connect_core.errors import Retryable, ShuttingDown
from danube_connect_core.producer_config import ProducerConfig
from danube_connect_core.records import SourceRecord
from danube_connect_core.testing import MemorySink, consume, make_config, produce, start_runtime

TOPIC = "/default/started"


class Streamer(SourceConnector):
    mode = SourceMode.STREAMING

    def __init__(self) -> None:
        self.sender: SourceSender | None = None

    async def initialize(self, config: ConnectorConfig) -> None:
        pass

    async def producer_configs(self) -> list[ProducerConfig]:
        return [ProducerConfig(TOPIC, reliable_dispatch=True)]

    async def start_streaming(self, sender: SourceSender) -> None:
        self.sender = sender


async def test_source_started_then_sender_raises_shutting_down(broker: Any) -> None:
    await produce(broker.url, TOPIC, [])
    await consume(broker.url, TOPIC, "reader", 0)
    source = Streamer()
    running = await start_runtime(source, make_config(broker.url, "started-source"), wait_started=True)
    assert source.sender is not None  # start_streaming has run: no /ready polling needed
    await source.sender.send(SourceRecord.from_json(TOPIC, {"n": 1}))
    (msg,) = await consume(broker.url, TOPIC, "reader", 1)
    assert orjson.loads(msg.payload) == {"n": 1}

    assert await running.stop() == 0
    with pytest.raises(ShuttingDown) as caught:
        await source.sender.send(SourceRecord.from_json(TOPIC, {"n": 2}))
    assert isinstance(caught.value, Retryable)  # old `except Retryable` handlers keep working
    assert caught.value.retry_after is not None
    with pytest.raises(ShuttingDown):
        await source.sender.send_batch([SourceRecord.from_json(TOPIC, {"n": 3})])


async def test_sink_started_means_subscribed(broker: Any) -> None:
    await produce(broker.url, TOPIC, [])  # the topic exists
    sink = MemorySink([ConsumerConfig(TOPIC, "started-sub")])
    running = await start_runtime(sink, make_config(broker.url, "started-sink"), wait_started=True)
    # subscribed when start_runtime returned: a record produced now is not missed
    await produce(broker.url, TOPIC, [{"n": 1}])
    (record,) = await sink.wait_for(1, within=60)
    assert record.payload == {"n": 1}
    await running.wait_started()  # idempotent
    assert await running.stop() == 0


class NoTopics(MemorySink):
    async def consumer_configs(self) -> list[ConsumerConfig]:
        return []


async def test_wait_started_raises_when_the_runtime_exits_first(broker: Any) -> None:
    running = await start_runtime(NoTopics([]), make_config(broker.url, "no-topics"))
    with pytest.raises(RuntimeError, match="code 1"):
        await running.wait_started()
    assert await running.wait() == 1
