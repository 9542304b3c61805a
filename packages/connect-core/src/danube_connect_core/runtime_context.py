"""RuntimeContext: what a runtime offers its connector besides records.

The runtime creates one context per run and hands it to the connector's optional
:meth:`~danube_connect_core.connector.SourceConnector.bind_runtime` hook, before the HTTP server on
``processing.metrics_port`` starts and before ``initialize()``; afterwards it stays reachable as
``connector.runtime_context``. Through it a connector:

- registers its own Prometheus metrics in :attr:`RuntimeContext.metrics_registry` (exported on /metrics
  next to the standard ``danube_connector_*`` ones);
- adds its own HTTP routes to that server with :meth:`RuntimeContext.add_routes` (only in
  ``bind_runtime``: the routes are fixed once the server started);
- reports a fatal condition at once with :meth:`RuntimeContext.fail` (drain, ``shutdown()``, exit 1), or
  lets the runtime watch its own tasks with :meth:`RuntimeContext.watch`;
- reports its readiness at once with :meth:`RuntimeContext.set_ready`, or asks for an immediate
  ``health_check()`` with :meth:`RuntimeContext.health_changed`, instead of waiting for the periodic one.
  This is the one readiness model: the core serves /health and /ready on ``processing.metrics_port`` for
  every connector, and a connector serves none of its own.
- learns that the runtime stopped intake and is draining (:attr:`RuntimeContext.stopping`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from danube_connect_core.config import ConnectorConfig
from danube_connect_core.errors import Fatal

if TYPE_CHECKING:
    from danube_connect_core.runtime_support import RuntimeServices

__all__ = ["RuntimeContext"]

log = logging.getLogger("danube_connect.runtime")


class RuntimeContext:
    """The connector's handle on its runtime (metrics registry, HTTP routes, fatal errors, readiness)."""

    def __init__(self, services: RuntimeServices) -> None:
        self._services = services
        self._watched: set[asyncio.Task[Any]] = set()

    @property
    def config(self) -> ConnectorConfig:
        """The loaded configuration (the same object ``initialize`` receives)."""
        return self._services.config

    @property
    def connector_name(self) -> str:
        """``connector_name`` of the configuration: use it as the ``connector`` label of own metrics."""
        return self._services.name

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The Prometheus registry /metrics renders. Create metrics with ``registry=ctx.metrics_registry``;
        names must not collide with the standard ``danube_connector_*`` metrics (ValueError otherwise)."""
        return self._services.metrics.registry

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Serve ``routes`` (``aiohttp.web.get(path, handler)`` ... or a ``web.RouteTableDef``) on the
        metrics port, beside /metrics, /health and /ready (which cannot be replaced).

        Raises RuntimeError once the server started: call it from ``bind_runtime``.
        """
        self._services.server.add_routes(routes)

    def fail(self, error: BaseException | str) -> None:
        """Stop now: the runtime stops intake, drains what is in flight, calls ``shutdown()`` and exits 1.

        For errors seen outside a runtime call (a background task, a callback of the external client);
        raising Fatal from ``poll``/``process``/``start_streaming`` does the same. The first failure wins.
        """
        exc = error if isinstance(error, BaseException) else Fatal(error)
        detail = str(error) if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self._services.fail(exc, detail)

    def watch(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """Fail the runtime (as :meth:`fail`) if ``task`` ends with an exception; returns ``task``.

        Use it for the tasks a streaming source starts in ``start_streaming`` so a crashed intake loop
        exits 1 at once. Cancellation and a normal return are not failures.
        """
        self._watched.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._watched.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._services.fail(exc, f"task {task.get_name()} failed: {type(exc).__name__}: {exc}")

    @property
    def stopping(self) -> bool:
        """True once the runtime stopped intake (a signal, a fatal error) and is draining (invariant 6).

        The core's /ready already answers 503 from then on (load balancers stop sending before the process
        exits) and ``sender.send`` raises ShuttingDown; a connector reads this to stop its own intake early
        (e.g. stop reading a socket).
        """
        return self._services.health.shutting_down or self._services.failed.is_set()

    def set_ready(self, ready: bool, reason: str = "") -> None:
        """Report the connector's own readiness (e.g. "MQTT connection lost"); /ready and /health reflect
        it at once. While false the connector is not ready, whatever ``health_check()`` says."""
        self._services.health.set_connector(ready, reason)

    def health_changed(self) -> None:
        """Run ``health_check()`` now (once, soon) instead of at the next periodic tick."""
        self._services.request_health_check()
