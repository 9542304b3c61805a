"""The sink under SinkRuntime with an in-process embedded broker and SurrealDB's embedded engine."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from danube_connect_core.client import DanubeClient
from danube_connect_core.testing import http_get, make_config, produce, start_runtime
from danube_connect_core.testing.waits import wait_for_status
from danube_embedded_broker import EmbeddedBroker
from danube_sink_surrealdb.connector import SurrealDbSink
from danube_sink_surrealdb.settings import SurrealDbSettings

from .helpers import TOPIC, payment

EVENTS = ["payment.succeeded", "payment.failed", "payment.refunded", "payment.canceled"]


def sink_settings(**mapping: Any) -> SurrealDbSettings:
    m = {"topic": TOPIC, "subscription": "surrealdb-payment-sink", "table": "stripe_payments", **mapping}
    return SurrealDbSettings.model_validate(
        {"url": "mem://", "topic_mappings": [m], "query_api": {"enabled": True}}
    )


async def get_json(port: int, path: str) -> tuple[int, Any]:
    status, body = await asyncio.to_thread(http_get, port, path)
    return status, json.loads(body)


async def wait_total(sink: SurrealDbSink, n: int) -> dict[str, Any]:
    assert sink.query_api is not None
    async with asyncio.timeout(60):
        while True:
            _, body = await get_json(sink.query_api.port, "/tables/stripe_payments/count?group_by=event")
            if body["total"] >= n:
                return dict(body)
            await asyncio.sleep(0.05)


async def test_payments_end_to_end_with_grouped_counts(broker_factory: Any) -> None:
    broker: EmbeddedBroker = await broker_factory(namespaces=("default", "stripe"))
    url = broker.url
    await produce(url, TOPIC, [], partitions=4)
    sink = SurrealDbSink()
    config = make_config(url, "surrealdb-sink-test", sink_settings(batch_size=50, flush_interval_ms=200))
    running = await start_runtime(sink, config)
    try:
        await wait_for_status(running.port, within=30)
        sent = [payment(i, EVENTS[i % 7 % 4]) for i in range(700)]
        await produce(url, TOPIC, sent, partitions=4)
        body = await wait_total(sink, 700)
        expected: dict[str, int] = {}
        for p in sent:
            expected[p["event"]] = expected.get(p["event"], 0) + 1
        assert body["total"] == 700
        assert {g["event"]: g["total"] for g in body["groups"]} == expected
        assert (await get_json(sink.query_api.port, "/tables/stripe_payments/count"))[1]["total"] == 700  # type: ignore[union-attr]
    finally:
        assert await running.stop() == 0


async def test_refused_rows_go_to_the_dead_letter_topic_and_the_rest_is_written(broker_factory: Any) -> None:
    broker: EmbeddedBroker = await broker_factory(namespaces=("default", "stripe"))
    url = broker.url
    dlq_topic = "/default/surrealdb-dlq-test-dlq"
    await produce(url, TOPIC, [], partitions=2)
    await produce(url, dlq_topic, [])
    client = DanubeClient(url)
    dlq = await client.subscribe(dlq_topic, "check", consumer_name="check")  # before anything is published
    sink = SurrealDbSink()
    config = make_config(url, "surrealdb-dlq-test", sink_settings(batch_size=40))
    running = await start_runtime(sink, config)
    try:
        await wait_for_status(running.port, within=30)
        assert sink.db is not None
        await sink.db.query("DEFINE FIELD amount ON stripe_payments TYPE int;")
        sent: list[Any] = [payment(i) for i in range(120)]
        for i in (3, 50, 51, 119):
            sent[i] = {**sent[i], "amount": f"bad-{i}"}
        await produce(url, TOPIC, sent, partitions=2)
        dead = []
        async with asyncio.timeout(60):
            while len(dead) < 4:
                dead.append(await dlq.receive())
                await dlq.ack(dead[-1])
        await wait_total(sink, 116)
        reasons = [m.attributes.get("error.reason", "") for m in dead]
        assert all("amount" in r for r in reasons), reasons
        assert sorted(orjson.loads(m.payload)["amount"] for m in dead) == [
            "bad-119",
            "bad-3",
            "bad-50",
            "bad-51",
        ]
        status, body = await get_json(sink.query_api.port, "/tables/stripe_payments/count")  # type: ignore[union-attr]
        assert (status, body["total"]) == (200, 116)
    finally:
        await client.close()
        assert await running.stop() == 0


async def test_query_api_is_read_only_and_limited_to_mapped_tables(broker_factory: Any) -> None:
    broker: EmbeddedBroker = await broker_factory(namespaces=("default", "stripe"))
    sink = SurrealDbSink()
    running = await start_runtime(sink, make_config(broker.url, "surrealdb-api-test", sink_settings()))
    try:
        async with asyncio.timeout(30):
            while sink.query_api is None:  # noqa: ASYNC110 - set by initialize()
                await asyncio.sleep(0.02)
        port = sink.query_api.port
        assert await get_json(port, "/tables") == (200, {"tables": ["stripe_payments"]})
        assert (await get_json(port, "/tables/other/count"))[0] == 404
        assert (await get_json(port, "/tables/stripe_payments/count?group_by=event;DELETE"))[0] == 400
        assert (await get_json(port, "/tables/stripe_payments/count"))[1] == {
            "table": "stripe_payments",
            "total": 0,
        }
        status, _ = await asyncio.to_thread(http_get, port, "/query")
        assert status == 404
    finally:
        assert await running.stop() == 0
