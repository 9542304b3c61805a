"""The HTTP endpoints on ``processing.metrics_port``: /metrics, /health, /ready, plus the connector's own
routes (``RuntimeContext.add_routes``)."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from danube_connect_core.health import HealthState
from danube_connect_core.metrics import ConnectorMetrics

__all__ = ["CORE_PATHS", "ObservabilityServer"]

#: The paths the runtime serves itself; a connector's routes cannot replace them.
CORE_PATHS = frozenset({"/metrics", "/health", "/ready"})


class ObservabilityServer:
    """Serves the metrics and health of one runtime. ``port=0`` picks a free port (see :attr:`port`)."""

    def __init__(self, metrics: ConnectorMetrics, health: HealthState, host: str, port: int) -> None:
        self.metrics = metrics
        self.health = health
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._extra: list[web.AbstractRouteDef] = []

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Serve further routes (from a connector); only before :meth:`start`."""
        if self._runner is not None:
            raise RuntimeError(
                "HTTP routes must be added before the server starts (in the connector's bind_runtime())"
            )
        new = list(routes)
        for route in new:
            path = getattr(route, "path", None)
            if path in CORE_PATHS:
                raise ValueError(f"{path} is served by the runtime and cannot be replaced")
        self._extra.extend(new)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_routes(self._extra)
        return app

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _: web.Request) -> web.Response:
        report = self.health.report()
        return web.json_response(report, status=503 if report["status"] == "unhealthy" else 200)

    async def _ready(self, _: web.Request) -> web.Response:
        report = self.health.report()
        return web.json_response(report, status=200 if report["ready"] else 503)
