"""What the webhook gets through the core's RuntimeContext: its metrics on the core's /metrics, a 503
"shutting down" once intake stopped, and exit 1 when its HTTP server stops serving on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from danube_connect_core.errors import ShuttingDown
from danube_connect_core.publisher import Published
from danube_connect_core.records import SourceEnvelope, SourceRecord
from danube_connect_core.testing import http_get

from .webhook_testsupport import StartWebhook, payment

PATH = "/hooks"


def _section(topic: str) -> dict[str, Any]:
    return {"endpoints": [{"path": PATH, "danube_topic": topic}]}


async def test_request_counter_is_served_on_the_core_metrics_port(
    broker: Any, start_webhook: StartWebhook
) -> None:
    hook = await start_webhook(broker.url, _section("/default/ctx-metrics"), name="webhook-ctx")
    status, _, _ = await hook.post(PATH, payment(1))
    assert status == 200
    code, text = await asyncio.to_thread(http_get, hook.metrics_port, "/metrics")
    assert code == 200
    line = 'danube_webhook_requests_total{connector="webhook-ctx",endpoint="/hooks",status="200"} 1.0'
    assert line in text.splitlines()
    assert (
        'danube_webhook_request_duration_seconds_count{connector="webhook-ctx",endpoint="/hooks"} 1.0' in text
    )


class _StoppedSender:
    """A sender whose runtime stopped intake (what RuntimeSourceSender raises then)."""

    async def send(self, item: SourceRecord | SourceEnvelope, *, wait: bool = True) -> Published:
        raise ShuttingDown("connector is shutting down: not accepting records", retry_after=1.0)

    async def send_batch(self, items: Sequence[SourceRecord | SourceEnvelope]) -> list[Published]:
        raise ShuttingDown("connector is shutting down: not accepting records", retry_after=1.0)


async def test_a_publish_refused_by_a_stopping_runtime_answers_503_shutting_down(
    broker: Any, start_webhook: StartWebhook
) -> None:
    hook = await start_webhook(broker.url, _section("/default/ctx-shutdown"))
    server = hook.connector.server
    assert server is not None
    real = server.sender
    server.sender = _StoppedSender()
    try:
        status, body, headers = await hook.post(PATH, payment(1))
    finally:
        server.sender = real
    assert status == 503
    assert body["error"] == "unavailable"
    assert "shutting down" in body["message"]
    assert headers["Retry-After"] == "1" and body["retry_after_s"] == 1
    # the broker is not blamed: the core's /ready is unaffected
    assert (await asyncio.to_thread(http_get, hook.metrics_port, "/ready"))[0] == 200
    status, _, _ = await hook.post(PATH, payment(2))
    assert status == 200


async def test_the_connector_exits_1_when_its_http_server_stops_on_its_own(
    broker: Any, start_webhook: StartWebhook
) -> None:
    hook = await start_webhook(broker.url, _section("/default/ctx-server-dies"))
    server = hook.connector.server
    assert server is not None and server.running
    runner = server._runner
    assert runner is not None
    for site in list(runner.sites):
        await site.stop()  # the listening socket closes under the connector
    assert await hook.running.wait(within=10) == 1
