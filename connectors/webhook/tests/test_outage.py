"""Broker outage: a real broker process is stopped and restarted on the same port and data dir.

While it is down every request answers 503 with Retry-After (never a 2xx for something unpublished,
invariant 1) and the core's in-flight bound answers the excess at once (invariant 3); the core's /ready
(metrics port) says not ready.
When it is back the connector recovers by itself, and every event that got a 2xx is on the topic.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from danube_connect_core.testing import http_get
from danube_connect_core.testing.waits import wait_for_status

from .webhook_testsupport import OpenReader, StartWebhook, payment

pytestmark = pytest.mark.slow

TOPIC = "/default/outage"
PATH = "/hooks"


async def test_broker_down_answers_503_and_recovers_without_losing_acknowledged_events(
    broker_process: Any,
    start_webhook: StartWebhook,
    open_reader: OpenReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="danube_connect.webhook")
    url = await asyncio.to_thread(broker_process.start)
    hook = await start_webhook(
        url,
        {
            "request_timeout_ms": 3000,
            "max_in_flight": 3,
            "endpoints": [{"path": PATH, "danube_topic": TOPIC, "partitions": 2, "reliable_dispatch": True}],
        },
        retry={"max_retries": 2, "retry_backoff_ms": 100, "max_backoff_ms": 400},
    )
    reader = await open_reader(url, TOPIC)
    ok: list[int] = []  # seqs answered 2xx
    refused: list[int] = []  # seqs answered 503
    seq = 0

    async def send() -> tuple[int, dict[str, Any], Any]:
        nonlocal seq
        seq += 1
        n = seq
        status, body, headers = await hook.post(PATH, payment(n, seq=n))
        if status == 200:
            ok.append(n)
        else:
            assert status == 503, body
            assert body["error"] == "unavailable"
            assert int(headers["Retry-After"]) >= 1
            refused.append(n)
        return status, body, headers

    for _ in range(20):
        assert (await send())[0] == 200

    await asyncio.to_thread(broker_process.stop)
    # sequential requests while the broker is down: each waits for its publish to fail, then 503
    caplog.clear()
    for _ in range(3):
        status, _, _ = await send()
        assert status == 503
    # Each failed publish is logged once, with its cause; not again as a bare "POST /hooks -> 503".
    lines = [r.getMessage() for r in caplog.records]
    assert [line for line in lines if line.startswith(f"publish to {TOPIC}")], lines
    assert not [line for line in lines if "-> 503" in line], lines
    status, text = await asyncio.to_thread(http_get, hook.metrics_port, "/ready")
    assert status == 503 and orjson.loads(text)["checks"]["danube"]["ok"] is False
    # a burst past max_in_flight: the excess is refused at once instead of queueing
    burst = await asyncio.gather(*(send() for _ in range(12)))
    assert {b[0] for b in burst} == {503}
    assert any("in-flight bound" in b[1]["message"] for b in burst)
    assert len(ok) == 20

    await asyncio.to_thread(broker_process.start)
    assert broker_process.url == url
    # the connector recovers by itself: keep sending (as a webhook provider retries) until accepted
    async with asyncio.timeout(60):
        while True:
            status, _, _ = await send()
            if status == 200:
                break
            await asyncio.sleep(0.2)
    for _ in range(20):
        assert (await send())[0] == 200
    await wait_for_status(hook.metrics_port, within=30)

    # every 2xx'd event is on the topic; nothing else than what was sent
    await reader.until(lambda _: set(ok) <= {p["seq"] for p in reader.payloads()}, within=60)
    received = [p["seq"] for p in reader.payloads()]
    assert set(ok) <= set(received)
    assert set(received) <= set(ok) | set(refused)
    assert len(ok) >= 41
    assert len(ok) + len(refused) == seq
