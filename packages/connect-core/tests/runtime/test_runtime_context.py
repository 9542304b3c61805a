"""RuntimeContext: own metrics and routes on the core's server, fail/watch exit 1 at once, set_ready and
health_changed move /ready without waiting for the periodic health check."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from danube_connect_core.config import ConnectorConfig
from danube_connect_core.connector import SourceConnector, SourceMode, SourceSender
from danube_connect_core.consumer_config import ConsumerConfig
from danube_connect_core.health import HealthState
from danube_connect_core.http_server import ObservabilityServer
from danube_connect_core.metrics import ConnectorMetrics
from danube_connect_core.producer_config import ProducerConfig
from danube_connect_core.runtime_context import RuntimeContext
from danube_connect_core.testing import MemorySink, http_get, make_config, produce, start_runtime
from danube_connect_core.testing.waits import wait_for_status
from prometheus_client import Counter

TOPIC = "/default/context"
#: The periodic health check never runs during these tests: whatever changes /ready is the direct channel.
NO_TICK = {"metrics_port": 0, "health_check_interval_ms": 600_000}


async def get(port: int, path: str) -> tuple[int, str]:
    return await asyncio.to_thread(http_get, port, path)


async def wait_status(port: int, path: str, status: int) -> dict[str, Any]:
    return dict(json.loads(await wait_for_status(port, path, status)))


class QuerySink(MemorySink):
    """A sink with its own metric and a read-only route on the metrics port (like SurrealDB's query API)."""

    def bind_runtime(self, context: RuntimeContext) -> None:
        self.queries = Counter(
            "danube_test_queries", "Queries answered", ("connector",), registry=context.metrics_registry
        )
        self.label = context.connector_name
        self.queries.labels(self.label)
        context.add_routes([web.get("/records/count", self.count)])

    async def count(self, _: web.Request) -> web.Response:
        self.queries.labels(self.label).inc()
        return web.json_response({"count": len(self.records)})


async def test_sink_serves_own_metrics_and_routes_on_the_core_port(broker: Any) -> None:
    await produce(broker.url, TOPIC, [])
    sink = QuerySink([ConsumerConfig(TOPIC, "ctx-sub")])
    running = await start_runtime(sink, make_config(broker.url, "ctx-sink"), wait_started=True)
    try:
        await produce(broker.url, TOPIC, [{"n": 1}, {"n": 2}])
        await sink.wait_for(2, within=60)
        status, body = await get(running.port, "/records/count")
        assert status == 200 and json.loads(body) == {"count": 2}
        _, text = await get(running.port, "/metrics")
        assert 'danube_test_queries_total{connector="ctx-sink"} 1.0' in text
        assert "danube_connector_messages_received_total" in text  # the standard ones are still there
        with pytest.raises(RuntimeError, match="bind_runtime"):
            sink.runtime_context.add_routes([web.get("/late", sink.count)])
    finally:
        assert await running.stop() == 0


def test_core_paths_cannot_be_replaced() -> None:
    server = ObservabilityServer(ConnectorMetrics("x"), HealthState(), "127.0.0.1", 0)

    async def handler(_: web.Request) -> web.Response:
        return web.Response()

    with pytest.raises(ValueError, match="/ready"):
        server.add_routes([web.get("/ready", handler)])


def test_runtime_context_outside_a_runtime_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not run by a runtime"):
        _ = MemorySink([]).runtime_context


class Streamer(SourceConnector):
    """Streams from its own task, watched by the runtime; its health check reads a flag."""

    mode = SourceMode.STREAMING

    def __init__(self) -> None:
        self.crash = asyncio.Event()
        self.target_up = True

    async def initialize(self, config: ConnectorConfig) -> None:
        pass

    async def producer_configs(self) -> list[ProducerConfig]:
        return [ProducerConfig(TOPIC)]

    async def start_streaming(self, sender: SourceSender) -> None:
        self.runtime_context.watch(asyncio.create_task(self._intake(), name="intake"))

    async def _intake(self) -> None:
        await self.crash.wait()
        raise ConnectionError("intake loop crashed")

    async def health_check(self) -> None:
        if not self.target_up:
            raise ConnectionError("target down")


async def test_a_watched_task_that_dies_exits_1_without_a_health_tick(broker: Any) -> None:
    source = Streamer()
    config = make_config(broker.url, "ctx-crash", processing=NO_TICK)
    running = await start_runtime(source, config, wait_started=True)
    await wait_status(running.port, "/ready", 200)
    source.crash.set()
    assert await running.wait() == 1
    assert "intake loop crashed" in running.runtime.health.failed_detail


async def test_fail_exits_1(broker: Any) -> None:
    source = Streamer()
    running = await start_runtime(
        source, make_config(broker.url, "ctx-fail", processing=NO_TICK), wait_started=True
    )
    source.runtime_context.fail("credentials revoked")
    assert await running.wait() == 1
    assert "credentials revoked" in running.runtime.health.failed_detail


async def test_set_ready_and_health_changed_move_ready_at_once(broker: Any) -> None:
    source = Streamer()
    running = await start_runtime(
        source, make_config(broker.url, "ctx-ready", processing=NO_TICK), wait_started=True
    )
    try:
        port = running.port
        await wait_status(port, "/ready", 200)
        ctx = source.runtime_context
        ctx.set_ready(False, "MQTT connection lost")
        report = await wait_status(port, "/ready", 503)
        assert report["checks"]["connector"] == {"ok": False, "detail": "MQTT connection lost"}
        assert report["status"] == "degraded"
        ctx.set_ready(True)
        await wait_status(port, "/ready", 200)

        source.target_up = False
        ctx.health_changed()  # the periodic check is 10 minutes away: only this can flip /ready
        report = await wait_status(port, "/ready", 503)
        assert "target down" in report["checks"]["target"]["detail"]
        source.target_up = True
        ctx.health_changed()
        await wait_status(port, "/ready", 200)
    finally:
        assert await running.stop() == 0
