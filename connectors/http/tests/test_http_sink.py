"""End to end in this process: embedded broker -> SinkRuntime -> HttpSink -> a real aiohttp server."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from danube_connect_core.testing import http_get, make_config, produce, start_runtime
from danube_connect_core.testing.waits import metric_settled, wait_for_status
from danube_sink_http import HttpSettings, HttpSink

TOPIC = "/default/events"


def config(name: str, url: str, retry: dict[str, int] | None = None, **http: Any) -> Any:
    mapping = {"topic": TOPIC, "subscription": "http"}
    mapping.update(http.pop("mapping", {}))
    settings = HttpSettings.model_validate({"url": url, **http, "topic_mappings": [mapping]})
    return make_config(
        "http://placeholder",
        name,
        settings,
        retry=retry or {"max_retries": 5, "retry_backoff_ms": 50, "max_backoff_ms": 5000},
        processing={"metrics_port": 0, "batch_idle_ms": 50, "health_check_interval_ms": 200},
    )


async def run(broker: Any, cfg: Any) -> Any:
    cfg = cfg.model_copy(update={"danube_service_url": broker.url}).with_settings(cfg.settings)
    running = await start_runtime(HttpSink(), cfg)
    await wait_for_status(running.port)
    return running


@contextlib.asynccontextmanager
async def subscribed(url: str, topic: str) -> AsyncIterator[Any]:
    """A consumer subscribed before anything is published (a new subscription starts at the latest)."""
    from danube_connect_core.client import DanubeClient

    await produce(url, topic, [])
    client = DanubeClient(url)
    try:
        yield await client.subscribe(topic, "inspect", consumer_name="inspect")
    finally:
        await client.close()


async def receive(consumer: Any, n: int, within: float = 60) -> list[Any]:
    out = []
    async with asyncio.timeout(within):
        while len(out) < n:
            msg = await consumer.receive()
            await consumer.ack(msg)
            out.append(msg)
    return out


async def until(cond: Any, within: float = 120) -> None:
    async with asyncio.timeout(within):
        while True:
            if cond():
                return
            await asyncio.sleep(0.05)


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


@pytest.mark.slow
async def test_5000_records_on_4_partitions_exactly_5000_requests(broker: Any, target: Any) -> None:
    n = 5000
    await produce(broker.url, TOPIC, [], partitions=4)
    running = await run(broker, config("http-5000", target.url, max_in_flight=32))
    await produce(broker.url, TOPIC, [{"i": i, "name": f"e{i}"} for i in range(n)], partitions=4)
    await until(lambda: len(target.requests) >= n)
    assert await running.stop() == 0
    assert len(target.requests) == n
    assert sorted(r.body["i"] for r in target.requests) == list(range(n))
    assert all(r.body == {"i": r.body["i"], "name": f"e{r.body['i']}"} for r in target.requests)
    assert len({r.key for r in target.requests}) == n


async def test_429_retry_after_is_honoured(broker: Any, target: Any) -> None:
    target.script = lambda seen, n: (429, {"Retry-After": "2"}, "slow down") if n == 1 else (200, {}, "ok")
    await produce(broker.url, TOPIC, [])
    running = await run(broker, config("http-429", target.url))
    await produce(broker.url, TOPIC, [{"i": 1}])
    await until(lambda: len(target.requests) >= 2)
    assert await running.stop() == 0
    first, second = target.requests
    assert second.at - first.at >= 2.0  # a lower bound set by the protocol, not a speed assertion
    assert first.key == second.key and first.body == second.body == {"i": 1}


async def test_503_three_times_then_200_delivers_once(broker: Any, target: Any) -> None:
    target.script = lambda seen, n: (503, {}, "down") if n <= 3 else (200, {}, "ok")
    await produce(broker.url, TOPIC, [])
    running = await run(broker, config("http-503", target.url))
    await produce(broker.url, TOPIC, [{"i": 7}])
    await until(lambda: len(target.requests) >= 4)
    _, text = await asyncio.to_thread(http_get, running.port, "/metrics")
    assert await running.stop() == 0
    assert len(target.requests) == 4  # three refused, one delivered, nothing after
    assert len({r.key for r in target.requests}) == 1
    assert metric(text, "danube_connector_retries_total") == 3
    assert metric(text, "danube_connector_dead_lettered_total") == 0


async def test_only_the_record_that_failed_transiently_is_sent_again(broker: Any, target: Any) -> None:
    failed: set[int] = set()

    def script(seen: Any, n: int) -> tuple[int, dict[str, str], str]:
        i = seen.body["i"]
        if i in (2, 7) and i not in failed:
            failed.add(i)
            return 503, {}, "busy"
        return 200, {}, "ok"

    target.script = script
    await produce(broker.url, TOPIC, [])
    running = await run(broker, config("http-partial", target.url, mapping={"batch_size": 10}))
    await produce(broker.url, TOPIC, [{"i": i} for i in range(10)])
    await until(lambda: len(target.requests) >= 12)
    # the target has the last request before write() returns and the runtime counts the records sent
    await metric_settled(running.port, "danube_connector_messages_sent_total", 10)
    _, text = await asyncio.to_thread(http_get, running.port, "/metrics")
    assert await running.stop() == 0
    sent = Counter(r.body["i"] for r in target.requests)
    assert sent == Counter({**dict.fromkeys(range(10), 1), 2: 2, 7: 2})  # the delivered ones not resent
    for i in (2, 7):
        assert len({r.key for r in target.requests if r.body["i"] == i}) == 1  # same Idempotency-Key
    assert metric(text, "danube_connector_dead_lettered_total") == 0
    assert metric(text, "danube_connector_messages_sent_total") == 10


async def test_400_is_dead_lettered_with_status_and_excerpt_rest_delivered(broker: Any, target: Any) -> None:
    def script(seen: Any, n: int) -> tuple[int, dict[str, str], str]:
        if seen.body.get("bad"):
            return 400, {}, '{"error": "field amount must be positive"}'
        return 200, {}, "ok"

    target.script = script
    await produce(broker.url, TOPIC, [])
    running = await run(broker, config("http-400", target.url))
    async with subscribed(broker.url, "/default/http-400-dlq") as dlq:
        await produce(broker.url, TOPIC, [{"i": i, "bad": i == 4} for i in range(10)])
        (dead,) = await receive(dlq, 1)
    await until(lambda: len(target.requests) >= 10)
    assert await running.stop() == 0
    reason = dead.attributes["error.reason"]
    assert "HTTP 400" in reason and "field amount must be positive" in reason
    assert Counter(r.body["i"] for r in target.requests) == Counter(range(10))


async def test_json_array_batch_refused_isolates_the_bad_record(broker: Any, target: Any) -> None:
    def script(seen: Any, n: int) -> tuple[int, dict[str, str], str]:
        if any(item.get("bad") for item in seen.body):
            return 422, {}, "item rejected"
        return 200, {}, "ok"

    target.script = script
    await produce(broker.url, TOPIC, [])
    cfg = config("http-array", target.url, body_mode="json_array", mapping={"batch_size": 10})
    running = await run(broker, cfg)
    async with subscribed(broker.url, "/default/http-array-dlq") as dlq:
        await produce(broker.url, TOPIC, [{"i": i, "bad": i == 6} for i in range(10)])
        (dead,) = await receive(dlq, 1)
    await until(lambda: sum(len(r.body) for r in target.requests if all(not x["bad"] for x in r.body)) >= 9)
    assert await running.stop() == 0
    assert "HTTP 422" in dead.attributes["error.reason"]
    delivered = Counter(x["i"] for r in target.requests if all(not x["bad"] for x in r.body) for x in r.body)
    assert delivered == Counter(i for i in range(10) if i != 6)


@pytest.mark.slow
async def test_target_down_20s_nothing_lost_nothing_dead_lettered(broker: Any, target: Any) -> None:
    await produce(broker.url, TOPIC, [])
    retry = {"max_retries": 200, "retry_backoff_ms": 100, "max_backoff_ms": 1000}
    running = await run(broker, config("http-outage", target.url, retry))
    await target.stop()
    await produce(broker.url, TOPIC, [{"i": i} for i in range(20)])

    async def ready_status() -> int:
        return (await asyncio.to_thread(http_get, running.port, "/ready"))[0]

    await wait_for_status(running.port, "/ready", 503)
    await asyncio.sleep(20)  # the outage itself (not a timing assertion)
    assert await ready_status() == 503
    await target.start()  # same port
    await until(lambda: len({r.body["i"] for r in target.requests}) >= 20)
    await wait_for_status(running.port, "/ready", 200)
    _, text = await asyncio.to_thread(http_get, running.port, "/metrics")
    assert await running.stop() == 0
    assert sorted({r.body["i"] for r in target.requests}) == list(range(20))
    assert metric(text, "danube_connector_dead_lettered_total") == 0
    assert metric(text, "danube_connector_retries_total") > 0
