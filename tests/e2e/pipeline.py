"""Helpers for the payments pipeline tests: real processes (broker, webhook source, SurrealDB sink)."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from danube_connect_core.testing import http_get
from danube_connect_core.testing.waits import logged_int

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "demo-api-key-e2e-12345"
PATH = "/webhooks/stripe/payments"
EVENTS = ("payment.succeeded", "payment.failed", "payment.refunded", "payment.canceled")
#: Fast redelivery so a killed sink's unacked messages come back in tens of milliseconds.
BROKER_ARGS = ["--namespace", "stripe", "--ack-timeout-ms", "2000", "--redelivery-base-ms", "20",
               "--redelivery-max-ms", "200"]  # fmt: skip


def seed_sink_toml(surreal_path: Path, query_api: bool) -> str:
    """example_e2e/surrealdb-sink-connector.toml (the seed's TOML) with the URL adjusted to surrealkv."""
    text = (ROOT / "example_e2e" / "surrealdb-sink-connector.toml").read_text()
    assert 'url = "surrealdb:8000"' in text
    text = text.replace('url = "surrealdb:8000"', f'url = "surrealkv://{surreal_path}"')
    if query_api:
        text += "\n[surrealdb.query_api]\nenabled = true\nport = 0\n"
    return text


def webhook_toml(data: Path) -> Path:
    """example_e2e/webhook-connector.toml next to a copy of its schema, bound to a free loopback port."""
    text = (ROOT / "example_e2e" / "webhook-connector.toml").read_text()
    text = text.replace('host = "0.0.0.0"', 'host = "127.0.0.1"').replace("port = 8080", "port = 0")
    (data / "schemas").mkdir(parents=True, exist_ok=True)
    (data / "schemas" / "payment.json").write_text(
        (ROOT / "example_e2e" / "schemas" / "payment.json").read_text()
    )
    path = data / "webhook-connector.toml"
    path.write_text(text)
    return path


def process_env(broker_url: str) -> dict[str, str]:
    return {"DANUBE_SERVICE_URL": broker_url, "METRICS_PORT": "0", "LOG_FORMAT": "json"}


#: The name tests/faults imports (until it imports danube_connect_core.testing.waits itself).
logged_port = logged_int


async def post_payments(port: int, payments: list[dict[str, Any]], concurrency: int = 64) -> Counter[int]:
    """POST every payment concurrently; returns the count per HTTP status."""
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(p: dict[str, Any]) -> None:
            async with session.post(
                f"http://127.0.0.1:{port}{PATH}", json=p, headers={"x-api-key": API_KEY}
            ) as resp:
                await resp.read()
                statuses[resp.status] += 1

        await asyncio.gather(*(one(p) for p in payments))
    return statuses


async def stored_counts(query_port: int) -> dict[str, Any]:
    status, body = await asyncio.to_thread(
        http_get, query_port, "/tables/stripe_payments/count?group_by=event"
    )
    assert status == 200, body
    return dict(json.loads(body))


async def read_store(path: Path) -> tuple[int, dict[str, int]]:
    """Open the surrealkv store directly (only after the sink process exited) and count its rows."""
    from surrealdb import AsyncSurreal

    db: Any = AsyncSurreal(f"surrealkv://{path}")
    await db.connect()
    try:
        await db.use("default", "default")
        rows = await db.query("SELECT event, count() AS total FROM stripe_payments GROUP BY event")
        ids = await db.query("SELECT count() AS n FROM stripe_payments GROUP ALL")
    finally:
        await db.close()
    total = int(ids[0]["n"]) if ids else 0
    return total, {r["event"]: int(r["total"]) for r in rows}


def ci() -> bool:
    return os.environ.get("CI") == "true"
