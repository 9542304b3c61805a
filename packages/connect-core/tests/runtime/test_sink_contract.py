"""The sink contract: ``write(SinkBatch)`` with per-record ``reject``/``retry``, against an embedded broker.

The sink below follows a script carried by each record (``do``: write it, reject it, retry it once) and
looks at the in-process broker's acknowledgements from inside ``write``: a record must never be acked before
the write that stored it returned, and a rejected record is acked only once its dead letter is on the
dead-letter topic.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from danube_connect_core.connector import SinkConnector
from danube_connect_core.consumer_config import ConsumerConfig
from danube_connect_core.errors import Fatal, InvalidData, Retryable
from danube_connect_core.records import SinkRecord
from danube_connect_core.sink_batch import SinkBatch
from danube_connect_core.testing import consume, make_config, produce, start_runtime
from danube_connect_core.testing.waits import metric_settled, metric_value

TOPIC = "/default/contract"
SUB = "contract-sub"
#: One batch for all records of a test: no size or age trigger before the idle gap.
PROCESSING = {"batch_size": 1000, "batch_timeout_ms": 60_000, "batch_idle_ms": 300}
RETRY = {"max_retries": 3, "retry_backoff_ms": 20, "max_backoff_ms": 100}
#: No redelivery while a test runs (the default test broker redelivers after 2 s).
SLOW_REDELIVERY = {"ack_timeout_ms": 120_000}


class Mapping:
    """What the sink attaches to its consumer config; each batch must carry this very object."""


class ScriptedSink(SinkConnector):
    """Writes, rejects or retries each record as its payload says; raises as ``failures`` says."""

    name = "scripted"

    def __init__(self, broker: Any, failures: list[BaseException] | None = None) -> None:
        self.broker = broker
        self.mapping = Mapping()
        self.failures = list(failures or [])
        self.calls: list[list[int]] = []
        self.stored: Counter[int] = Counter()
        self.retried: set[int] = set()
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def initialize(self, config: Any) -> None:
        pass

    async def consumer_configs(self) -> list[ConsumerConfig]:
        return [ConsumerConfig(TOPIC, SUB, mapping=self.mapping)]

    async def write(self, batch: SinkBatch[Any]) -> None:
        assert batch.mapping is self.mapping
        assert (batch.topic, batch.subscription) == (TOPIC, SUB)
        ids = [r.payload["i"] for r in batch.records]
        self.calls.append(ids)
        acked = [r.payload["i"] for r in batch.records if is_acked(self.broker, r)]
        assert acked == [], f"acked before written: {acked}"
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        for r in batch.records:
            do = r.payload.get("do", "write")
            if do == "reject":
                batch.reject(r, f"record {r.payload['i']} is bad")
            elif do == "retry-once" and r.payload["i"] not in self.retried:
                self.retried.add(r.payload["i"])
                batch.retry(r, "target busy")
            else:
                self.stored[r.payload["i"]] += 1


def is_acked(broker: Any, record: SinkRecord) -> bool:
    sub = broker.core.topics[TOPIC].subscriptions[SUB]
    return bool(sub.state.is_acked(record.offset))


def acked(broker: Any) -> list[int]:
    """Log offsets of TOPIC acknowledged by SUB."""
    topic = broker.core.topics[TOPIC]
    sub = topic.subscriptions[SUB]
    return [o for o in range(topic.log.next_offset) if sub.state.is_acked(o)]


async def publish(broker: Any, records: list[dict[str, Any]]) -> None:
    """Publish ``records`` one at a time: record ``k`` lands at log offset ``k``, which the assertions on
    acked offsets and on batch order rely on (sent in a window, two could be stored in either order)."""
    await produce(broker.url, TOPIC, records, in_order=True)


async def wait_until(condition: Any, what: str, within: float = 60.0) -> None:
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - the in-process broker's state, no event to wait on
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what}") from None


async def start(broker: Any, sink: ScriptedSink, name: str, **sections: Any) -> Any:
    await produce(broker.url, TOPIC, [])  # the topic exists before the sink subscribes
    sections.setdefault("processing", dict(PROCESSING))
    sections.setdefault("retry", dict(RETRY))
    return await start_runtime(sink, make_config(broker.url, name, **sections), wait_started=True)


async def test_rejected_retried_and_written_records_in_one_batch(broker_factory: Any) -> None:
    broker = await broker_factory(**SLOW_REDELIVERY)
    sink = ScriptedSink(broker)
    running = await start(broker, sink, "contract")
    await consume(broker.url, "/default/contract-dlq", "inspect", 0)  # subscribed before the dead letter
    script = {3: "reject", 5: "retry-once"}
    await publish(broker, [{"i": i, "do": script.get(i, "write")} for i in range(10)])
    try:
        await wait_until(lambda: len(acked(broker)) == 10, "every record acked")
        port = running.port
        # the broker counts an ack when it receives it; the runtime settles its gauges when the answer
        # comes back, a moment later on a loaded machine
        inflight = await metric_settled(port, "danube_connector_inflight_messages", 0)
        sent = await metric_value(port, "danube_connector_messages_sent_total")
        retries = await metric_value(port, "danube_connector_retries_total")
        dead = await metric_value(port, "danube_connector_dead_lettered_total")
        invalid = await metric_value(port, "danube_connector_errors_total", kind="invalid_data")
    finally:
        assert await running.stop() == 0
    (letter,) = await consume(broker.url, "/default/contract-dlq", "inspect", 1)

    assert sink.calls == [list(range(10)), [5]]  # the retry hands back only the retried record
    assert sink.stored == Counter({i: 1 for i in range(10) if i != 3})  # each written once
    assert letter.attributes["error.reason"] == "record 3 is bad"
    assert letter.attributes["error.kind"] == "invalid_data"
    assert int(letter.attributes["error.offset"]) == 3
    assert (sent, retries, dead, invalid) == (9, 1, 1, 1)
    assert inflight == 0  # one ack per received message: none acked twice, none left


async def test_written_and_rejected_records_are_acked_before_the_retry(broker_factory: Any) -> None:
    """Settled records are acked as soon as ``write`` returned; the retried one waits (unacked)."""
    broker = await broker_factory(**SLOW_REDELIVERY)
    sink = ScriptedSink(broker)
    running = await start(broker, sink, "contract-order")
    script = {1: "reject", 2: "retry-once"}
    seen_at_retry: list[int] = []
    dlq_at_retry: list[int] = []
    original = sink.write

    async def write(batch: SinkBatch[Any]) -> None:
        if sink.calls:  # the second call: the retry
            seen_at_retry.extend(acked(broker))
            dlq = broker.core.topics["/default/contract-order-dlq"]
            dlq_at_retry.append(dlq.log.next_offset)
        await original(batch)

    sink.write = write  # type: ignore[method-assign]
    await publish(broker, [{"i": i, "do": script.get(i, "write")} for i in range(4)])
    try:
        await wait_until(lambda: len(acked(broker)) == 4, "every record acked")
    finally:
        assert await running.stop() == 0
    assert seen_at_retry == [0, 1, 3]  # written and rejected: acked; the retried record: not yet
    assert dlq_at_retry == [1]  # the rejected record's dead letter was published before its ack


async def test_tolerance_none_makes_a_rejection_fatal(broker_factory: Any) -> None:
    broker = await broker_factory(**SLOW_REDELIVERY)
    sink = ScriptedSink(broker)
    running = await start(broker, sink, "contract-strict", errors={"tolerance": "none"})
    await publish(broker, [{"i": i, "do": "reject" if i == 2 else "write"} for i in range(5)])
    assert await running.wait(within=60) == 1
    assert acked(broker) == [0, 1, 3, 4]  # the written records are acked, the rejected one is not
    assert "/default/contract-strict-dlq" not in broker.core.topics or (
        broker.core.topics["/default/contract-strict-dlq"].log.next_offset == 0
    )


async def test_retryable_and_unknown_exceptions_retry_the_whole_batch(broker_factory: Any) -> None:
    broker = await broker_factory(**SLOW_REDELIVERY)
    sink = ScriptedSink(broker, failures=[Retryable("target down"), RuntimeError("driver bug")])
    running = await start(broker, sink, "contract-retry")
    await publish(broker, [{"i": i} for i in range(6)])
    try:
        await wait_until(lambda: len(acked(broker)) == 6, "every record acked")
        retries = await metric_value(running.port, "danube_connector_retries_total")
        dead = await metric_value(running.port, "danube_connector_dead_lettered_total")
    finally:
        assert await running.stop() == 0
    assert sink.calls == [list(range(6))] * 3
    assert sink.stored == Counter(range(6))
    assert (retries, dead) == (2, 0)  # an outage is never poison


@pytest.mark.parametrize(
    ("failure", "expected"),
    [(Retryable("target down"), "target down"), (RuntimeError("no route"), "RuntimeError: no route")],
)
async def test_exhausted_budget_exits_1_without_acking(
    broker_factory: Any, failure: BaseException, expected: str
) -> None:
    broker = await broker_factory(**SLOW_REDELIVERY)
    sink = ScriptedSink(broker, failures=[failure] * 10)
    running = await start(broker, sink, "contract-down", retry={**RETRY, "max_retries": 2})
    await publish(broker, [{"i": i} for i in range(4)])
    assert await running.wait(within=60) == 1
    assert len(sink.calls) == 3  # the first attempt and two retries
    assert acked(broker) == []
    assert expected in str(running.runtime.services.fatal_error)


async def test_a_record_reported_for_retry_every_time_exhausts_the_budget(broker_factory: Any) -> None:
    broker = await broker_factory(**SLOW_REDELIVERY)
    sink = ScriptedSink(broker)
    sink.retried = set()

    async def always_retry_1(batch: SinkBatch[Any]) -> None:
        sink.calls.append([r.payload["i"] for r in batch.records])
        for r in batch.records:
            if r.payload["i"] == 1:
                batch.retry(r, "still busy")

    sink.write = always_retry_1  # type: ignore[method-assign]
    running = await start(broker, sink, "contract-busy", retry={**RETRY, "max_retries": 2})
    await publish(broker, [{"i": i} for i in range(3)])
    assert await running.wait(within=60) == 1
    assert sink.calls == [[0, 1, 2], [1], [1]]
    assert acked(broker) == [0, 2]  # the written ones are acked; the one never written is not


@pytest.mark.parametrize("error", [Fatal("credentials revoked"), InvalidData("one record is bad")])
async def test_fatal_and_invalid_data_from_write_stop_at_once(broker_factory: Any, error: Exception) -> None:
    broker = await broker_factory(**SLOW_REDELIVERY)
    sink = ScriptedSink(broker, failures=[error])
    running = await start(broker, sink, "contract-fatal")
    await publish(broker, [{"i": i} for i in range(3)])
    assert await running.wait(within=60) == 1
    assert len(sink.calls) == 1  # not retried
    assert acked(broker) == []
    if isinstance(error, InvalidData):
        assert "batch.reject" in str(running.runtime.services.fatal_error)


async def test_shutdown_completes_the_batch_being_written_and_its_retries(broker_factory: Any) -> None:
    broker = await broker_factory(**SLOW_REDELIVERY)
    sink = ScriptedSink(broker)
    sink.gate = asyncio.Event()
    running = await start(broker, sink, "contract-drain")
    await publish(broker, [{"i": i, "do": "retry-once" if i == 0 else "write"} for i in range(5)])
    async with asyncio.timeout(60):
        await sink.entered.wait()
    stopping = asyncio.ensure_future(running.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done()  # the write in progress holds the drain
    sink.gate.set()
    assert await stopping == 0
    assert sink.calls == [list(range(5)), [0]]
    assert sink.stored == Counter(range(5))
    assert acked(broker) == list(range(5))


def test_sink_batch_reports() -> None:
    """SinkBatch bookkeeping the runtime relies on (no broker)."""
    records = [_record(i) for i in range(3)]
    batch: SinkBatch[str] = SinkBatch("m", TOPIC, SUB, records)
    batch.retry(records[0], "busy", retry_after=2.0)
    batch.retry(records[1], "busy", retry_after=0.5)
    batch.reject(records[1], "bad")  # a rejection wins over a retry
    batch.retry(records[1], "busy again")  # and stays a rejection
    assert batch.rejected == {records[1].message_id: "bad"}
    assert batch.retried == {records[0].message_id: "busy"}
    assert batch.retry_after == 2.0
    assert batch.written == [records[2]]
    with pytest.raises(ValueError, match="not in this batch"):
        batch.reject(_record(99), "foreign")


def _record(offset: int) -> SinkRecord:
    return SinkRecord(
        payload={"i": offset},
        topic=TOPIC,
        partition=None,
        offset=offset + 1,
        publish_time=0,
        producer_name="p",
        attributes={},
        schema=None,
        key=None,
    )
