"""The HTTP sink's conformance case (danube_connect_core.testing.conformance).

:class:`HttpTarget` is a real aiohttp server (in the test's event loop) that de-duplicates on
``Idempotency-Key``, as a real idempotent API does: a repeated key is answered 200 and not stored again.
The sink posts one record per request (``body_mode = "record"``), so each record's key is stable across
redeliveries; :meth:`HttpTarget.verify` checks exactly that. A body without an integer ``i`` is answered
422 (its bad records). Its outage: the server stops (connection
refused) and listens again on the same port with the same state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from danube_connect_core.testing.conformance import SinkCase, SinkTarget, restart_outage

__all__ = ["CASE", "Delivery", "HttpTarget"]


@dataclass
class Delivery:
    """One request the HTTP target accepted: its Idempotency-Key (None when absent) and record."""

    key: str | None
    i: int


@dataclass
class _HttpState:
    deliveries: list[Delivery] = field(default_factory=list)
    #: Idempotency-Key -> record: what a de-duplicating target keeps.
    stored: dict[str, int] = field(default_factory=dict)


class HttpTarget(SinkTarget):
    """An idempotent HTTP API on 127.0.0.1 (``POST /ingest``)."""

    section_name = "http"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.state = _HttpState()
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"

    @property
    def deliveries(self) -> list[Delivery]:
        """Every accepted request, repeats included, in arrival order."""
        return self.state.deliveries

    async def _handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        i = body.get("i") if isinstance(body, dict) else None
        if isinstance(i, bool) or not isinstance(i, int):
            # A real API validates what it is sent: 422 is poison to the sink (dead-lettered).
            return web.Response(status=422, text='"i" must be an integer')
        key = request.headers.get("Idempotency-Key")
        self.state.deliveries.append(Delivery(key, i))
        # A request without a key cannot be de-duplicated: it is stored as a record of its own.
        self.state.stored.setdefault(key if key is not None else f"no-key-{uuid.uuid4()}", i)
        return web.Response(status=200, text="ok")

    async def start(self) -> None:
        """Start (or restart on the same port) the server."""
        app = web.Application()
        app.router.add_post("/ingest", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def section(self) -> dict[str, Any]:
        return {"url": self.url, "body_mode": "record", "max_in_flight": 64}

    def mapping(self) -> dict[str, Any]:
        return {}

    def bad_records(self) -> list[Any]:
        return [{"name": "without i"}, {"i": "one", "name": "x"}]

    async def stored_ids(self) -> list[int]:
        return list(self.state.stored.values())

    def verify(self, n: int) -> None:
        self.assert_stable_keys(n)

    def assert_stable_keys(self, n: int) -> None:
        """Records ``0..n-1`` arrived under exactly ``n`` distinct keys: each record's repeats (if any)
        carried its first key, so this target stored each once. Raises AssertionError naming offenders."""
        unstable = {i: keys for i, keys in self.keys_by_record().items() if len(keys) != 1 or None in keys}
        example = ", ".join(map(str, sorted(unstable.items(), key=lambda kv: kv[0])[:10]))
        assert not unstable, f"{len(unstable)} records without one stable key, e.g. {example}"
        distinct = {d.key for d in self.state.deliveries}
        assert len(distinct) == n, f"{len(distinct)} distinct Idempotency-Keys for {n} records"

    def keys_by_record(self) -> dict[int, set[str | None]]:
        """Record -> the Idempotency-Keys its deliveries carried (one each when redeliveries are stable)."""
        keys: dict[int, set[str | None]] = {}
        for d in self.state.deliveries:
            keys.setdefault(d.i, set()).add(d.key)
        return keys


CASE = SinkCase("http", idempotent=True, target_type=HttpTarget, outage=restart_outage(HttpTarget))
