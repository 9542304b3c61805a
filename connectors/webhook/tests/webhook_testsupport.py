"""Helpers and fixtures for the webhook source tests: the connector in this event loop against an embedded
broker, an HTTP client, and ``open_reader`` (danube_connect_core.testing.topic_reader) to count what
really reached Danube.

Imported relatively by the tests beside it (``from .webhook_testsupport import ...``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from danube_connect_core.testing import RunningRuntime, make_config, start_runtime
from danube_connect_core.testing.topic_reader import TopicReader, open_topic_reader
from danube_source_webhook import WebhookSettings, WebhookSource
from multidict import CIMultiDict

REPO = Path(__file__).resolve().parents[3]
PAYMENT_SCHEMA = REPO / "schemas" / "payment.json"
API_KEY = "test-api-key-0123456789"


def payment(i: int, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event": "payment.succeeded",
        "amount": 100 + i,
        "currency": "USD",
        "timestamp": 1_705_000_000 + i,
    }
    doc.update(overrides)
    return doc


@dataclass
class RunningWebhook:
    connector: WebhookSource
    running: RunningRuntime
    session: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.connector.port}"

    @property
    def metrics_port(self) -> int:
        return self.running.port

    async def post(
        self,
        path: str,
        body: bytes | dict[str, Any] | list[Any],
        *,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
        api_key: str | None = API_KEY,
    ) -> tuple[int, dict[str, Any], CIMultiDict[str]]:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        h = dict(headers or {})
        if content_type is not None:
            h.setdefault("Content-Type", content_type)
        if api_key is not None:
            h.setdefault("x-api-key", api_key)
        async with self.session.post(self.base + path, data=data, headers=h) as resp:
            return resp.status, await _json(resp), resp.headers.copy()

    async def request(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[int, dict[str, Any], CIMultiDict[str]]:
        async with self.session.request(method, self.base + path, **kwargs) as resp:
            return resp.status, await _json(resp), resp.headers.copy()


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    raw = await resp.read()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_raw": raw.decode(errors="replace")}
    return value if isinstance(value, dict) else {"_value": value}


StartWebhook = Callable[..., Awaitable[RunningWebhook]]


@pytest_asyncio.fixture
async def start_webhook(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StartWebhook]:
    """``await start_webhook(service_url, webhook_section, schemas=[...], **core_sections)``."""
    started: list[RunningWebhook] = []
    monkeypatch.setenv("WEBHOOK_API_KEY", API_KEY)

    async def start(
        service_url: str,
        section: dict[str, Any],
        *,
        schemas: list[dict[str, Any]] | None = None,
        name: str = "webhook-test",
        **core: Any,
    ) -> RunningWebhook:
        section = {"host": "127.0.0.1", "port": 0, **section}
        settings = WebhookSettings.model_validate(section)
        core.setdefault("retry", {"max_retries": 1, "retry_backoff_ms": 50, "max_backoff_ms": 200})
        config = make_config(service_url, name, settings, schemas=schemas or [], **core)
        connector = WebhookSource()
        running = await start_runtime(connector, config)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        hook = RunningWebhook(connector, running, session)
        started.append(hook)
        # intake is open once the sender is attached (producers created)
        async with asyncio.timeout(30):
            while connector.server is None or connector.server.sender is None:
                if running.task.done():
                    raise RuntimeError(f"runtime ended early with {running.task.result()}")
                await asyncio.sleep(0.01)
        return hook

    yield start
    for hook in started:
        await hook.session.close()
        if not hook.running.task.done():
            await hook.running.stop()


def payment_schema(topic: str, subject: str = "payment-v1") -> dict[str, Any]:
    return {
        "topic": topic,
        "subject": subject,
        "schema_type": "json_schema",
        "schema_file": str(PAYMENT_SCHEMA),
    }


OpenReader = Callable[..., Awaitable[TopicReader]]


@pytest_asyncio.fixture
async def open_reader() -> AsyncIterator[OpenReader]:
    readers: list[TopicReader] = []

    async def open_(
        service_url: str, topic: str, subscription: str = "test-reader", *, dedupe: bool = True
    ) -> TopicReader:
        reader = await open_topic_reader(service_url, topic, subscription, dedupe=dedupe)
        readers.append(reader)
        return reader

    yield open_
    for reader in readers:
        with contextlib.suppress(Exception):
            await reader.close()
