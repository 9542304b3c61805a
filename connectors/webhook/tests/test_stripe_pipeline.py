"""connectors/webhook/config/stripe.toml as written, run as a real process, feeding a SurrealDB sink
process (embedded surrealkv store): a real-shaped Stripe event delivered three times (Stripe's retries:
same event, each signed again by the stripe library at its own time) is stored once.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import stripe
from danube_connect_core.testing import ConnectorProcess, http_get
from danube_connect_core.testing.toml_writer import write_connector_toml
from danube_connect_core.testing.waits import logged_int, start_ready

CONFIG = Path(__file__).resolve().parents[1] / "config" / "stripe.toml"
SECRET = "whsec_" + secrets.token_hex(16)


def sink_toml(path: Path, broker_url: str, store: Path) -> Path:
    mapping = {
        "topic": "/stripe/events",
        "subscription": "surrealdb-stripe-events",
        "subscription_type": "Shared",
        "table": "stripe_events",
        "expected_schema_subject": "stripe-event-v1",
        "batch_size": 10,
        "flush_interval_ms": 100,
    }
    surrealdb = {"url": f"surrealkv://{store}", "namespace": "default", "database": "default"}
    return write_connector_toml(
        path,
        broker_url,
        "surrealdb-stripe-events",
        surrealdb={**surrealdb, "query_api": {"enabled": True, "port": 0}, "topic_mappings": [mapping]},
    )


def event(event_id: str, kind: str, object_id: str, amount: int) -> dict[str, Any]:
    obj = "charge" if kind.startswith("charge.") else "payment_intent"
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": object_id,
                "object": obj,
                "amount": amount,
                "currency": "usd",
                "customer": None,
                "livemode": False,
                "metadata": {"order_id": "6735"},
                "status": "succeeded",
            }
        },
        "livemode": False,
        "pending_webhooks": 2,
        "request": {"id": "req_9xk2M1rT0pQw", "idempotency_key": "0f1c9a2e-1b7d-4c55-9f1e-6a3e2d8b7c41"},
        "type": kind,
    }


async def stored(query_port: int) -> dict[str, Any]:
    status, body = await asyncio.to_thread(http_get, query_port, "/tables/stripe_events/count?group_by=type")
    assert status == 200, body
    return dict(json.loads(body))


async def test_a_stripe_event_delivered_three_times_is_stored_once(
    broker_factory: Any, tmp_path: Path
) -> None:
    broker = await broker_factory(namespaces=("default", "stripe"))
    env = {"DANUBE_SERVICE_URL": broker.url, "METRICS_PORT": "0", "LOG_FORMAT": "json"}
    webhook = ConnectorProcess(
        "webhook",
        CONFIG,
        env={**env, "WEBHOOK_HOST": "127.0.0.1", "WEBHOOK_PORT": "0", "STRIPE_WEBHOOK_SECRET": SECRET},
    ).start()
    sink_config = sink_toml(tmp_path / "sink.toml", broker.url, tmp_path / "surreal")
    sink = ConnectorProcess("surrealdb", sink_config, env=env).start()
    try:
        await start_ready(webhook)
        await start_ready(sink)
        port = await asyncio.to_thread(logged_int, webhook, "webhook_port")
        query_port = await asyncio.to_thread(logged_int, sink, "query_api_port")
        url = f"http://127.0.0.1:{port}/webhooks/stripe"
        deliveries = [
            event("evt_3PqRsT2eZvKYlo2C1a2b3c4d", "payment_intent.succeeded", "pi_3PqRsT2eZvKYlo2C1", 2000),
            event("evt_3PqRsT2eZvKYlo2C0x9y8z7w", "charge.succeeded", "ch_3PqRsT2eZvKYlo2C1", 2000),
        ]
        answers: list[tuple[int, str | None]] = []
        async with aiohttp.ClientSession() as session:
            for delivery in deliveries:
                body = json.dumps(delivery, indent=2)  # Stripe's bodies are pretty-printed
                for attempt in range(3):  # the first delivery and two retries, each signed at its time
                    header = stripe.WebhookSignature.generate_signature_header(
                        body, SECRET, int(time.time()) - 2 + attempt
                    )
                    async with session.post(
                        url,
                        data=body.encode(),
                        headers={
                            "Stripe-Signature": header,
                            "Content-Type": "application/json; charset=utf-8",
                        },
                    ) as resp:
                        text = await resp.text()
                        assert resp.status == 200, text
                        assert resp.headers["X-Request-Id"]
                        answers.append((resp.status, resp.headers.get("Idempotent-Replayed")))
            # a delivery signed with another secret is refused and never stored
            bad = json.dumps(event("evt_forged", "charge.succeeded", "ch_x", 1))
            forged = stripe.WebhookSignature.generate_signature_header(bad, "whsec_not_the_secret")
            async with session.post(
                url, data=bad, headers={"Stripe-Signature": forged, "Content-Type": "application/json"}
            ) as resp:
                assert resp.status == 401
        assert answers == [(200, None), (200, "true"), (200, "true")] * 2
        async with asyncio.timeout(60):
            while (counts := await stored(query_port))["total"] < 2:
                assert sink.proc is not None and sink.proc.poll() is None, sink.log_tail()
                await asyncio.sleep(0.05)
        assert counts["total"] == 2, counts
    finally:
        sink.signal(signal.SIGTERM)
        webhook.signal(signal.SIGTERM)
        assert sink.wait(60) == 0, sink.log_tail()
        assert webhook.wait(60) == 0, webhook.log_tail()
    # after the drain: still one row per event, and no log line holds the secret
    assert SECRET not in "\n".join(webhook.lines + sink.lines)
    from surrealdb import AsyncSurreal

    db: Any = AsyncSurreal(f"surrealkv://{tmp_path / 'surreal'}")
    await db.connect()
    try:
        await db.use("default", "default")
        rows = await db.query("SELECT id AS rid, type, data.object.id AS object_id FROM stripe_events")
    finally:
        await db.close()
    assert sorted((r["type"], r["object_id"]) for r in rows) == [
        ("charge.succeeded", "ch_3PqRsT2eZvKYlo2C1"),
        ("payment_intent.succeeded", "pi_3PqRsT2eZvKYlo2C1"),
    ]
