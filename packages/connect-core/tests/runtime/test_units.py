"""Pure pieces of the runtime: batching, backoff, codecs, records, dead-letter attributes, JSON logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
from typing import Any

import pytest
from danube_connect_core.batching import Batcher
from danube_connect_core.config import ErrorSettings, RetrySettings
from danube_connect_core.dead_letter import dead_letter_attributes
from danube_connect_core.errors import InvalidData, Retryable
from danube_connect_core.logging_setup import JsonFormatter
from danube_connect_core.offset_tracker import OffsetTracker
from danube_connect_core.proto import DanubeApi_pb2 as pb
from danube_connect_core.records import Offset, SinkRecord, SourceRecord
from danube_connect_core.resilience import RetriesExhausted, backoff_delay, equal_jitter, retry_retryable
from danube_connect_core.schema_codec import AvroCodec, NumberCodec, SchemalessCodec, StringCodec, codec_for
from danube_connect_core.subscription import SubscriptionType
from pydantic import BaseModel


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_batcher_triggers() -> None:
    clock = Clock()
    b: Batcher[int] = Batcher(max_size=3, max_age_s=1.0, idle_s=0.1, window=2, clock=clock)
    assert b.due() is None and b.deadline() is None
    b.add(1, partition=0)
    assert b.due() is None and b.deadline() == pytest.approx(0.1)
    b.add(2, partition=0)
    assert b.due() == "window"  # the only partition seen has a full broker window
    b.add(3, partition=1)
    assert b.due() == "size"
    assert b.take() == [1, 2, 3] and len(b) == 0
    b.add(4, partition=0)
    clock.now = 0.2
    assert b.due() == "idle"
    b.take()
    for t in range(12):
        clock.now = 1.0 + t * 0.09
        b.add(t, partition=t)
    assert b.due() is None or b.due() == "size"


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    s = RetrySettings(max_retries=5, retry_backoff_ms=100, max_backoff_ms=1000)
    for retry, cap in ((0, 0.1), (1, 0.2), (2, 0.4), (5, 1.0)):
        d = backoff_delay(retry, s)
        assert cap / 2 <= d <= cap
    assert backoff_delay(0, s, retry_after=0.7) >= 0.7
    assert backoff_delay(0, s, retry_after=99) <= 1.0


async def test_retry_counts_and_exhausts() -> None:
    s = RetrySettings(max_retries=2, retry_backoff_ms=1, max_backoff_ms=2)
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise Retryable("not yet")
        return "ok"

    retries: list[int] = []
    assert await retry_retryable(flaky, s, on_retry=lambda n, e, d: retries.append(n)) == "ok"
    assert retries == [1, 2]

    async def down() -> None:
        raise Retryable("down")

    with pytest.raises(RetriesExhausted) as err:
        await retry_retryable(down, s)
    assert err.value.attempts == 3
    assert isinstance(err.value.last, Retryable) and str(err.value.last) == "down"


def test_one_retries_exhausted_for_the_runtime_and_the_client() -> None:
    from danube_connect_core import client
    from danube_connect_core.client import errors as client_errors

    assert client.RetriesExhausted is RetriesExhausted is client_errors.RetriesExhausted
    # `except DanubeError` around broker calls keeps catching a broker that stayed unreachable
    assert issubclass(RetriesExhausted, client.DanubeError)


def test_equal_jitter_is_exponential_capped_and_floored() -> None:
    rng = random.Random(7)
    for attempt, ceiling in ((0, 0.1), (1, 0.2), (3, 0.8), (4, 1.0), (10_000, 1.0)):
        delays = [equal_jitter(attempt, 0.1, 1.0, rng) for _ in range(100)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_tolerance_decision() -> None:
    assert not ErrorSettings().invalid_is_fatal
    assert ErrorSettings(tolerance="none").invalid_is_fatal


def test_offset_tracker_out_of_order() -> None:
    t = OffsetTracker()
    a, b, c = (t.track(Offset("x", i)) for i in (1, 2, 3))
    other = t.track(Offset("y", 10))
    t.done(c)
    t.done(other)
    assert t.take_committable() == [Offset("y", 10)]
    t.done(a)
    assert t.take_committable() == [Offset("x", 1)]
    t.done(b)
    assert t.take_committable() == [Offset("x", 3)]
    assert t.pending() == 0


def test_codecs() -> None:
    assert StringCodec().decode(StringCodec().encode(SourceRecord.from_string("/t", "hé"))) == "hé"
    assert NumberCodec().decode(NumberCodec().encode(SourceRecord.from_number("/t", 3.5))) == 3.5
    with pytest.raises(InvalidData):
        NumberCodec().encode(SourceRecord.from_json("/t", "x"))
    with pytest.raises(InvalidData):
        StringCodec().decode(b"\xff")
    assert SchemalessCodec().decode(b'{"a": 1}') == {"a": 1}
    assert SchemalessCodec().decode(b"\x00binary") == b"\x00binary"
    fields = [{"name": "id", "type": "long"}, {"name": "s", "type": "string"}]
    avro = AvroCodec({"type": "record", "name": "P", "fields": fields})
    data = avro.encode(SourceRecord.from_json("/t", {"id": 7, "s": "x"}))
    assert avro.decode(data) == {"id": 7, "s": "x"}
    with pytest.raises(InvalidData):
        avro.encode(SourceRecord.from_json("/t", {"id": "seven", "s": "x"}))
    js = codec_for("json_schema", b'{"type": "object", "required": ["a"]}')
    assert js.encode(SourceRecord.from_bytes("/t", b'{"a": 1}')) == b'{"a": 1}'  # raw bytes kept
    with pytest.raises(InvalidData, match="schema violation"):
        js.encode(SourceRecord.from_json("/t", {"b": 1}))
    with pytest.raises(ValueError):
        codec_for("protobuf", b"")


def test_source_record_builders_are_immutable() -> None:
    class P(BaseModel):
        id: int

    r = SourceRecord.from_json("/a", P(id=1))
    r2 = r.with_attribute("k", "v").with_attributes({"x": "y"}).with_key("key").with_topic("/b")
    assert r.payload == {"id": 1} and r.attributes == {} and r.key is None
    assert r2.attributes == {"k": "v", "x": "y"} and r2.key == "key" and r2.topic == "/b"
    with pytest.raises(TypeError):
        SourceRecord.from_number("/a", True)


def _sink_record(**kw: object) -> SinkRecord:
    base: dict[str, object] = dict(
        payload={"id": 1},
        topic="/default/t",
        partition=2,
        offset=41,
        publish_time=1700,
        producer_name="p",
        attributes={"a": "b", "error.reason": "old"},
        schema=None,
        key="k",
        raw=b'{"id": 1}',
        subscription="s",
    )
    base.update(kw)
    return SinkRecord(**base)  # type: ignore[arg-type]


def test_message_ids_at_offset_zero_tell_non_reliable_messages_apart() -> None:
    # Non-reliable topics deliver every message at offset 0: the producer identity separates them.
    first = _sink_record(offset=0, request_id=7)
    second = _sink_record(offset=0, request_id=8)
    later = _sink_record(offset=0, request_id=7, publish_time=1800)
    assert len({first.message_id, second.message_id, later.message_id}) == 3
    # ...and is stored with the message, so a redelivery of the same message keeps its id.
    assert _sink_record(offset=0, request_id=7).message_id == first.message_id


async def test_non_reliable_messages_get_distinct_message_ids(broker: Any) -> None:
    from danube_connect_core.client import DanubeClient

    client = DanubeClient(broker.url)
    try:
        producer = await client.create_producer("/default/np-ids", "np-producer", reliable=False)
        consumer = await client.subscribe("/default/np-ids", "s", consumer_name="c")
        for i in range(20):
            await producer.send(str(i).encode())
        received = [await asyncio.wait_for(consumer.receive(), 10) for _ in range(20)]
        assert {m.offset for m in received} == {0}
        # The broker hands back each message's request id: the runtime copies it into the SinkRecord.
        ids = {
            _sink_record(
                offset=m.offset,
                partition=m.partition,
                publish_time=m.publish_time,
                producer_name=m.producer_name,
                request_id=m.request_id,
            ).message_id
            for m in received
        }
        assert len(ids) == 20
    finally:
        await client.close()


def test_sink_record_message_id_as_type_and_dead_letter_attributes() -> None:
    class M(BaseModel):
        id: int

    r = _sink_record()
    assert r.message_id == "/default/t:2:41"
    assert _sink_record(partition=None).message_id == "/default/t:41"
    assert r.as_type(M) == M(id=1)
    with pytest.raises(InvalidData):
        _sink_record(payload={"id": "x"}).as_type(M)
    attrs = dead_letter_attributes(r, reason="bad", connector="c", kind="invalid_data")
    assert attrs["a"] == "b" and attrs["error.reason"] == "bad"
    for key, value in {
        "error.connector": "c",
        "error.topic": "/default/t",
        "error.partition": "2",
        "error.offset": "41",
        "error.publish_time": "1700",
    }.items():
        assert attrs[key] == value


def test_subscription_type_spellings() -> None:
    assert SubscriptionType("key_shared") is SubscriptionType.KEY_SHARED
    assert SubscriptionType("Shared") is SubscriptionType.SHARED
    assert SubscriptionType(2) is SubscriptionType.FAILOVER  # the wire number
    for member in SubscriptionType:  # the wire value is the broker's enum, member by member
        assert pb.ConsumerRequest.SubscriptionType.Value(member.value) == member.wire
    with pytest.raises(ValueError):
        SubscriptionType("round_robin")


def test_json_log_lines() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("hello %s", "x", extra={"topic": "/a"})
    doc = json.loads(stream.getvalue())
    assert doc["message"] == "hello x" and doc["level"] == "warning" and doc["topic"] == "/a"
