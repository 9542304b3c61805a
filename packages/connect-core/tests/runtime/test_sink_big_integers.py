"""A JSON integer beyond 64 bits reaches a sink as the exact int, not orjson's rounded float."""

from __future__ import annotations

import json
from typing import Any

from danube_connect_core.client import DanubeClient, SchemaReference
from danube_connect_core.consumer_config import ConsumerConfig
from danube_connect_core.testing import MemorySink, make_config, produce, start_runtime

PLAIN = "/default/big-int-plain"
TYPED = "/default/big-int-typed"
NUMBER = "/default/big-int-number"
SUBJECT = "big-int-payment"
NUMBER_SUBJECT = "big-int-number"
BIG = 10**20 + 1  # orjson would read 1e+20


async def test_big_integers_reach_the_sink_exactly(broker: Any) -> None:
    client = DanubeClient(broker.url)
    schema = {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}
    await client.schema_registry.register(SUBJECT, "json_schema", json.dumps(schema).encode())
    await client.schema_registry.register(NUMBER_SUBJECT, "number", b"{}")
    typed = await client.create_producer(
        TYPED, "big-typed", reliable=True, schema=SchemaReference.latest(SUBJECT)
    )
    number = await client.create_producer(
        NUMBER, "big-number", reliable=True, schema=SchemaReference.latest(NUMBER_SUBJECT)
    )
    for topic in (PLAIN, TYPED, NUMBER):
        await produce(broker.url, topic, [])  # the topics exist before the sink subscribes

    sink = MemorySink(
        [
            ConsumerConfig(PLAIN, "big-sub"),
            ConsumerConfig(TYPED, "big-sub", expected_schema_subject=SUBJECT),
            ConsumerConfig(NUMBER, "big-sub"),
        ]
    )
    running = await start_runtime(sink, make_config(broker.url, "big-int-sink"), wait_started=True)
    try:
        # the wire form is spelled out as bytes: this is what a source (or any other client) publishes
        await produce(broker.url, PLAIN, [b'{"amount": 100000000000000000001, "low": -9223372036854775809}'])
        await produce(broker.url, PLAIN, [{"nested": [-(10**30)]}])  # the testing kit writes big ints too
        await typed.send(b'{"amount": 100000000000000000001}')
        await number.send(b"100000000000000000001")
        records = await sink.wait_for(4, within=60)
    finally:
        await typed.close()
        await number.close()
        await client.close()
        assert await running.stop() == 0

    by_topic: dict[str, list[Any]] = {}
    for r in records:
        by_topic.setdefault(r.topic, []).append(r.payload)
    assert by_topic[PLAIN] == [{"amount": BIG, "low": -(2**63) - 1}, {"nested": [-(10**30)]}]
    assert by_topic[TYPED] == [{"amount": BIG}]
    assert by_topic[NUMBER] == [BIG]
    for payload in (*by_topic[PLAIN], *by_topic[TYPED]):
        assert all(type(v) is int for v in payload.values() if not isinstance(v, list))
    assert type(by_topic[NUMBER][0]) is int
