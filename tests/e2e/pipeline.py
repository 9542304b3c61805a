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
from danube_sink_surrealdb.testing import surrealkv_config
from danube_source_webhook.testing import loopback_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example_e2e"
API_KEY = "demo-api-key-e2e-12345"
PATH = "/webhooks/stripe/payments"
EVENTS = ("payment.succeeded", "payment.failed", "payment.refunded", "payment.canceled")
#: Fast redelivery so a killed sink's unacked messages come back in tens of milliseconds.
BROKER_ARGS = ["--namespace", "stripe", "--ack-timeout-ms", "2000", "--redelivery-base-ms", "20",
               "--redelivery-max-ms", "200"]  # fmt: skip


def seed_sink_toml(surreal_path: Path, query_api: bool) -> str:
    """example_e2e/surrealdb-sink-connector.toml (the seed's TOML) with the URL adjusted to surrealkv."""
    return surrealkv_config(EXAMPLE / "surrealdb-sink-connector.toml", surreal_path, query_api=query_api)


def webhook_toml(data: Path) -> Path:
    """example_e2e/webhook-connector.toml next to a copy of its schemas, bound to a free loopback port."""
    return loopback_config(EXAMPLE / "webhook-connector.toml", data)


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
