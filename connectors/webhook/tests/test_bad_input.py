"""Bad input gets its documented answer and never reaches Danube (invariants 1 and 4).

One connector, one unpartitioned reliable topic read back by a subscription opened before anything is
sent: the valid events are interleaved with every kind of bad request, and the topic must hold exactly
the valid ones, in order, up to a final marker event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from danube_connect_core.testing import http_get

from .webhook_testsupport import API_KEY, OpenReader, StartWebhook, payment, payment_schema

TOPIC = "/default/payments-bad-input"
PATH = "/webhooks/payments"
LIMIT = 4096


def violations() -> list[Any]:
    """50 payloads that are JSON but break the payment schema in different ways."""
    out: list[Any] = []
    for i in range(10):
        out.append({k: v for k, v in payment(i).items() if k != "amount"})  # required field missing
        out.append(payment(i, event="payment.exploded"))  # not in the enum
        out.append(payment(i, amount=-1 - i))  # below the minimum
        out.append(payment(i, currency="usd"))  # pattern
        out.append([payment(i)] if i % 2 else "a string")  # not an object
    return out


async def test_bad_requests_get_their_status_and_only_valid_events_are_published(
    broker: Any, start_webhook: StartWebhook, open_reader: OpenReader
) -> None:
    hook = await start_webhook(
        broker.url,
        {
            "max_body_bytes": LIMIT,
            "endpoints": [{"path": PATH, "danube_topic": TOPIC, "reliable_dispatch": True}],
        },
        schemas=[payment_schema(TOPIC)],
    )
    reader = await open_reader(broker.url, TOPIC)
    accepted: list[int] = []
    seq = 0

    async def valid() -> None:
        nonlocal seq
        seq += 1
        status, body, _ = await hook.post(PATH, payment(seq, seq=seq))
        assert status == 200, body
        assert body["status"] == "accepted" and body["topic"] == TOPIC
        accepted.append(seq)

    # 50 schema violations -> 422 with the validation errors
    for doc in violations():
        status, body, _ = await hook.post(PATH, doc)
        assert status == 422, body
        assert body["error"] == "schema_violation"
        assert body["errors"], body
        assert all(set(e) == {"path", "message"} for e in body["errors"])
        await valid()
    status, body, _ = await hook.post(PATH, payment(0, amount=-5, currency="eur"))
    assert status == 422
    assert {e["path"] for e in body["errors"]} == {"/amount", "/currency"}

    # malformed JSON -> 400
    for raw in (b"{", b"", b'{"event": }', b"\xff\xfe", b"[1,2", b"nul"):
        status, body, _ = await hook.post(PATH, raw)
        assert status == 400, (raw, body)
        assert body["error"] == "invalid_json"
    await valid()

    # missing or wrong API key -> 401 (the key is never echoed)
    for key in (None, "", "wrong", API_KEY + "x", API_KEY[:-1]):
        headers = {"x-api-key": key} if key is not None else {}
        status, body, _ = await hook.post(PATH, payment(0), headers=headers, api_key=None)
        assert status == 401, body
        assert body["error"] == "unauthorized"
        assert API_KEY not in str(body)
    await valid()

    # over the size limit -> 413, from Content-Length and while a chunked body streams in
    big = b'{"pad": "' + b"x" * LIMIT + b'"}'
    status, body, _ = await hook.post(PATH, big)
    assert status == 413 and body["error"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 512 + 4):
            yield b" " * 512
            await asyncio.sleep(0)

    status, body, _ = await hook.request(
        "POST", PATH, data=chunks(), headers={"Content-Type": "application/json", "x-api-key": API_KEY}
    )
    assert status == 413 and body["error"] == "payload_too_large"
    await valid()

    # unsupported content type -> 415
    for ctype in (None, "text/plain", "application/json; charset=latin-1"):
        headers = {"Content-Type": ctype} if ctype is not None else {}
        status, body, _ = await hook.post(PATH, payment(0), headers=headers, content_type=None)
        assert status == 415, (ctype, body)
    # a form-encoded body without its one `payload` field -> 400 naming the fix
    status, body, _ = await hook.post(PATH, payment(0), content_type="application/x-www-form-urlencoded")
    assert status == 400 and body["error"] == "invalid_form", body
    assert "application/json" in body["message"]
    status, body, _ = await hook.post(
        PATH, payment(seq + 1, seq=seq + 1), content_type="application/cloudevents+json; charset=UTF-8"
    )
    assert status == 200, body
    seq += 1
    accepted.append(seq)

    # unknown path -> 404, wrong method -> 405 with Allow
    for path in ("/", "/webhooks", PATH + "/x", "/webhooks/payments2"):
        status, body, _ = await hook.post(path, payment(0))
        assert status == 404 and body["error"] == "not_found"
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        status, body, headers = await hook.request(method, PATH, headers={"x-api-key": API_KEY})
        assert status == 405 and body["error"] == "method_not_allowed"
        assert headers["Allow"] == "POST"
    await valid()

    # the marker: everything sent before it was answered, so the topic must hold exactly `accepted`
    status, _, _ = await hook.post(PATH, payment(0, seq="end"))
    assert status == 200
    await reader.until(lambda msgs: any(b'"end"' in m.payload for m in msgs))
    seqs = [p["seq"] for p in reader.payloads()]
    assert seqs == [*accepted, "end"]
    assert len(accepted) == 55

    # the webhook metrics count every answer by status
    code, text = await asyncio.to_thread(http_get, hook.metrics_port, "/metrics")
    assert code == 200

    def count(status: int, endpoint: str = PATH) -> float:
        labels = f'connector="webhook-test",endpoint="{endpoint}",status="{status}"'
        prefix = f"danube_webhook_requests_total{{{labels}}} "
        return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))

    assert count(422) == 51
    assert count(400) == 7  # 6 bad JSON + the form without payload
    assert count(401) == 5
    assert count(413) == 2
    assert count(415) == 3
    assert count(405) == 4
    assert count(404, "unmatched") == 4
    assert count(200) == 56  # 55 accepted + the marker
    assert "danube_webhook_request_duration_seconds_count" in text


async def test_health_and_ready_are_the_cores_not_the_webhook_ports(
    broker: Any, start_webhook: StartWebhook
) -> None:
    """One readiness model: /health and /ready are served by the core on the metrics port; the webhook
    port serves only endpoints (a GET there is a 404 like any unknown path)."""
    hook = await start_webhook(
        broker.url, {"endpoints": [{"path": PATH, "danube_topic": "/default/health-topic"}]}
    )
    async with aiohttp.ClientSession() as s:
        for path in ("/health", "/ready"):
            async with s.get(f"http://127.0.0.1:{hook.metrics_port}{path}") as r:
                body = await r.json()
                assert r.status == 200, body
                assert body["ready"] is True
                assert body["checks"]["danube"]["ok"] and body["checks"]["target"]["ok"]
    for path in ("/health", "/ready"):
        status, body, _ = await hook.request("GET", path)
        assert status == 404 and body["error"] == "not_found"


async def test_a_schema_violation_is_dead_lettered_with_its_reason_before_the_422(
    broker: Any, start_webhook: StartWebhook, open_reader: OpenReader
) -> None:
    """The core pipeline dead-letters an invalid event; the 422 is answered only once the dead letter is
    acknowledged. When the dead-letter topic cannot be written the answer is 503 (the provider retries),
    never 422: nothing is dropped."""
    topic = "/default/dlq-payments"
    section = {"endpoints": [{"path": PATH, "danube_topic": topic, "reliable_dispatch": True}]}
    hook = await start_webhook(broker.url, section, schemas=[payment_schema(topic)], name="webhook-dlq")
    dlq = await open_reader(broker.url, "/default/webhook-dlq-dlq")
    status, body, headers = await hook.post(
        PATH, payment(1, currency="usd"), headers={"X-Request-Id": "bad-1", "x-api-key": API_KEY}
    )
    assert status == 422 and body["error"] == "schema_violation" and body["dead_lettered"] is True, body
    (letter,) = await dlq.take(1)
    assert orjson.loads(letter.payload)["currency"] == "usd"
    assert letter.attributes["error.kind"] == "invalid_data"
    assert letter.attributes["error.topic"] == topic
    assert "usd" in letter.attributes["error.reason"]
    assert letter.attributes["webhook.request_id"] == "bad-1"

    refused = await start_webhook(
        broker.url,
        section,
        schemas=[payment_schema(topic)],
        name="webhook-dlq-refused",
        errors={"dead_letter_topic": "not a topic"},
        retry={"max_retries": 0, "retry_backoff_ms": 10, "max_backoff_ms": 10},
    )
    status, body, headers = await refused.post(PATH, payment(2, currency="usd"))
    assert status == 503 and body["error"] == "unavailable", body
    assert int(headers["Retry-After"]) >= 1
