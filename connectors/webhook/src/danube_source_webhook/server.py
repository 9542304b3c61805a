"""The aiohttp server: routes requests to endpoints and answers errors as JSON.

Readiness is not served here: /health and /ready are the core's, on ``processing.metrics_port``, for every
connector (the broker's state from the delivery pipeline and its probe, this connector's ``health_check``
— the server is listening — and the runtime's intake state).

Routing is done here rather than by aiohttp's router so that unknown paths (404) and wrong methods (405,
with ``Allow``) get the same JSON error bodies as everything else. Every answer is counted in
``danube_webhook_requests_total`` and timed in ``danube_webhook_request_duration_seconds``, and every
answer — success, idempotent replay, error — carries ``X-Request-Id`` (the caller's, or a new one).

:attr:`WebhookServer.serving` is a task that ends with :class:`ServerStopped` if the listening socket stops
serving other than through :meth:`WebhookServer.stop`; the connector hands it to ``RuntimeContext.watch``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web
from danube_connect_core import SourceSender
from danube_connect_core.client.ratelog import RateLimitedLog

from danube_source_webhook.endpoint import Endpoint, request_id_of
from danube_source_webhook.errors import WebhookError, json_response
from danube_source_webhook.metrics import UNMATCHED, WebhookMetrics

__all__ = ["ServerStopped", "WebhookServer"]

log = logging.getLogger("danube_connect.webhook")

#: Paths aiohttp serves as plain resources as they are written (no braces, escapes or empty segments).
_PLAIN_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+/?")


class _ListeningServer(Protocol):
    """What this module needs of the loop's server: asyncio's and uvloop's both have it (uvloop's is not
    an ``asyncio.AbstractServer`` subclass, so the check is by shape)."""

    sockets: Any

    async def serve_forever(self) -> None: ...


class ServerStopped(RuntimeError):
    """The webhook HTTP server stopped serving without being asked to."""


class WebhookServer:
    """Serves the endpoints on ``host:port`` (0 picks a free port, see :attr:`port`)."""

    def __init__(
        self,
        endpoints: Mapping[str, Endpoint],
        metrics: WebhookMetrics,
        host: str,
        port: int,
    ) -> None:
        self.endpoints = dict(endpoints)
        self.metrics = metrics
        self.host = host
        self.port = port
        self.sender: SourceSender | None = None
        self.stopping = False
        self._runner: web.AppRunner | None = None
        self._serving: asyncio.Task[None] | None = None
        # Under overload or a broker outage every request may be a 503: a few lines per second tell
        # the story (with a count of the rest) without the logging itself costing the CPU.
        self._unavailable_log = RateLimitedLog(log, per_second=1.0, burst=5)
        for endpoint in self.endpoints.values():
            metrics.declare(endpoint.path)

    async def start(self) -> int:
        limit = max((e.max_body_bytes for e in self.endpoints.values()), default=1024 * 1024)
        app = web.Application(client_max_size=limit)
        # The endpoints' own paths are plain resources (aiohttp finds them by a dict lookup); the
        # catch-all only serves the rest (404 and odd spellings), through the same dispatch.
        for path in self.endpoints:
            if _PLAIN_PATH.fullmatch(path):
                app.router.add_route("*", path, self._dispatch)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # aiohttp has no header-read timeout; its keep-alive timer runs from the moment a connection
        # opens (and from each answer) and closes it if no complete request head arrived by then. Bound
        # by the longest request timeout, it also closes connections trickling their headers
        # (slowloris), and idle keep-alive connections after the same time.
        head_timeout_s = max((e.request_timeout_s for e in self.endpoints.values()), default=30.0)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=5.0,
            keepalive_timeout=head_timeout_s,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server: _ListeningServer | None = getattr(site, "_server", None)
        if server is None or not callable(getattr(server, "serve_forever", None)):
            raise RuntimeError("aiohttp did not start a listening server")
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._serving = asyncio.get_running_loop().create_task(
            self._serve(server), name="webhook-http-server"
        )
        return self.port

    @property
    def serving(self) -> asyncio.Task[None]:
        """Runs while the server listens (after :meth:`start`); fails with ServerStopped if the server
        stops on its own."""
        if self._serving is None:
            raise RuntimeError("the webhook server was not started")
        return self._serving

    async def _serve(self, server: _ListeningServer) -> None:
        cause: BaseException | None = None
        try:
            # already serving: this only waits until the server is closed, which cancels its future
            await server.serve_forever()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this task was cancelled (stop(), loop shutdown)
        except Exception as exc:  # e.g. the server was closed before this task first ran
            cause = exc
        if not self.stopping:
            raise ServerStopped(
                f"the webhook HTTP server on {self.host}:{self.port} stopped serving unexpectedly"
            ) from cause

    async def stop(self) -> None:
        self.stopping = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._serving is not None:
            self._serving.cancel()
            await asyncio.gather(self._serving, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._runner is not None and self._serving is not None and not self._serving.done()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        request_id = request_id_of(request)
        response = await self._answer(request, request_id)
        response.headers["X-Request-Id"] = request_id
        return response

    async def _answer(self, request: web.Request, request_id: str) -> web.Response:
        path = request.path
        started = time.perf_counter()
        endpoint = self.endpoints.get(path)
        label = endpoint.path if endpoint is not None else UNMATCHED
        try:
            if endpoint is None:
                raise WebhookError(404, "not_found", f"no webhook endpoint at {path[:200]}")
            response = await endpoint.handle(request, self.sender, request_id)
        except WebhookError as exc:
            response = exc.response()
            if exc.status >= 500 and not exc.logged:
                self._unavailable_log.warning(
                    "%s %s -> %d %s", request.method, label, exc.status, exc.message
                )
            else:  # a client error, or a failure whose cause was logged where it happened
                log.debug("%s %s -> %d %s", request.method, label, exc.status, exc.message)
        except Exception:
            log.exception("unexpected error handling %s %s", request.method, label)
            response = json_response({"error": "internal_error", "message": "internal error"}, 500)
        self.metrics.observe(label, response.status, time.perf_counter() - started)
        return response
