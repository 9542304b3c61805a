"""A real aiohttp server standing in for the HTTP target: records every request, answers as scripted."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest_asyncio
from aiohttp import web


@dataclass
class Seen:
    at: float
    key: str | None
    body: Any
    headers: dict[str, str]


Script = Callable[[Seen, int], tuple[int, dict[str, str], str]]


def always_ok(seen: Seen, n: int) -> tuple[int, dict[str, str], str]:
    return 200, {}, "ok"


@dataclass
class Target:
    script: Script = always_ok
    requests: list[Seen] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "")
        if "ndjson" in ctype:
            body: Any = [orjson.loads(line) for line in raw.splitlines() if line]
        else:
            body = orjson.loads(raw) if raw else None
        seen = Seen(time.monotonic(), request.headers.get("Idempotency-Key"), body, dict(request.headers))
        self.requests.append(seen)
        status, headers, text = self.script(seen, len(self.requests))
        return web.Response(status=status, headers=headers, text=text)

    async def start(self) -> Target:
        app = web.Application()
        app.router.add_route("*", "/ingest", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest_asyncio.fixture
async def target() -> AsyncIterator[Target]:
    server = await Target().start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def broker(broker_factory: Any) -> Any:
    """The workspace broker, but with a 60 s ack timeout: these tests hold records unacked on purpose
    (Retry-After, outages), and a 2 s timeout would have the broker redeliver them meanwhile."""
    return await broker_factory(ack_timeout_ms=60_000)
