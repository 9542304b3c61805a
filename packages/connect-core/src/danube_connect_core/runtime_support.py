"""What both runtimes share: metrics, health, the HTTP server, the Danube client, the health loop, waiting
for a stop and the end of a drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from danube_connect_core.config import ConnectorConfig
from danube_connect_core.connector import SinkConnector, SourceConnector
from danube_connect_core.errors import Fatal
from danube_connect_core.health import HealthState
from danube_connect_core.http_server import ObservabilityServer
from danube_connect_core.metrics import ConnectorMetrics
from danube_connect_core.runtime_context import RuntimeContext

__all__ = ["RuntimeServices", "create_client"]

log = logging.getLogger("danube_connect.runtime")

BROKER_PROBE_TIMEOUT_S = 5.0


def create_client(config: ConnectorConfig) -> Any:
    """A DanubeClient configured from ``[danube]`` and ``[retry]``."""
    from danube_connect_core.client import ClientOptions, DanubeClient, RetryPolicy, TlsOptions

    d = config.danube
    tls = None
    if d.tls or d.ca_file or d.cert_file:
        tls = TlsOptions(
            ca_file=str(d.ca_file) if d.ca_file else None,
            cert_file=str(d.cert_file) if d.cert_file else None,
            key_file=str(d.key_file) if d.key_file else None,
        )
    r = config.retry
    retry = RetryPolicy(
        max_retries=r.max_retries,
        base_backoff_ms=r.retry_backoff_ms,
        max_backoff_ms=max(r.max_backoff_ms, r.retry_backoff_ms),
    )
    token = d.token_env.get_secret_value() if d.token_env is not None else None
    options = ClientOptions(tls=tls, token=token, retry=retry)
    return DanubeClient(config.danube_service_url, options)


class RuntimeServices:
    """Metrics, health state and the HTTP server of one runtime, plus the periodic health check."""

    def __init__(self, connector: SourceConnector | SinkConnector, config: ConnectorConfig) -> None:
        self.connector = connector
        self.config = config
        self.name = config.connector_name
        self.metrics = ConnectorMetrics(self.name)
        self.health = HealthState(metrics=self.metrics)
        p = config.processing
        self.server = ObservabilityServer(self.metrics, self.health, p.metrics_host, p.metrics_port)
        self._fatal: BaseException | None = None
        self.failed = asyncio.Event()
        self._check_now = asyncio.Event()
        self.context = RuntimeContext(self)
        #: Asks the broker something cheap; set by a runtime whose broker state is learnt only from its
        #: own traffic (a source: publish results), so that /ready recovers without that traffic.
        self.broker_probe: Callable[[], Awaitable[object]] | None = None

    async def start_server(self) -> None:
        """Hand the connector its RuntimeContext (``bind_runtime``), then start the HTTP server."""
        bind_context = getattr(self.connector, "_bind_context", None)
        if bind_context is not None:  # connectors not derived from the base classes have no hooks
            bind_context(self.context)
            self.connector.bind_runtime(self.context)
        await self.server.start()

    @property
    def port(self) -> int:
        return self.server.port

    def fail(self, exc: BaseException, detail: str) -> None:
        """Record a fatal condition: the runtime drains and exits 1 (first failure wins)."""
        if self._fatal is None:
            self._fatal = exc
            log.error("fatal: %s", detail)
        self.health.set_failed(detail)
        self.failed.set()

    @property
    def fatal_error(self) -> BaseException | None:
        return self._fatal

    async def check_target_once(self) -> None:
        try:
            await self.connector.health_check()
        except Fatal as exc:
            self.health.set_target(False, f"fatal: {exc}")
            self.fail(exc, f"health check: {exc}")
        except Exception as exc:
            self.health.set_target(False, f"{type(exc).__name__}: {exc}")
        else:
            self.health.set_target(True)

    def request_health_check(self) -> None:
        """Run the health check now instead of at the next tick (RuntimeContext.health_changed)."""
        self._check_now.set()

    async def health_loop(self) -> None:
        interval = self.config.processing.health_check_interval_ms / 1000
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._check_now.wait(), interval)
            self._check_now.clear()
            await self.check_broker_once()
            await self.check_target_once()

    async def check_broker_once(self) -> None:
        """While the broker is marked unreachable, probe it; an answer marks it reachable again.

        A source learns about the broker from publish results only: after a failed publish, /ready would
        stay 503 until the next publish succeeds, and a load balancer routing by /ready sends none.
        """
        if self.broker_probe is None or self.health.broker_connected:
            return
        try:
            await asyncio.wait_for(self.broker_probe(), BROKER_PROBE_TIMEOUT_S)
        except Exception as exc:  # still away: keep the detail the failure recorded, log nothing new
            log.debug("broker probe failed: %s", exc)
        else:
            self.health.set_broker(True)

    async def until_stopped(self, stop: asyncio.Event) -> None:
        """Return once ``stop`` is set (a signal) or the runtime failed, whichever comes first."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.failed.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def finish(
        self,
        kind: str,
        tasks: Sequence[asyncio.Task[Any]],
        *,
        initialized: bool,
        closers: Sequence[Callable[[], Awaitable[object]]] = (),
    ) -> int:
        """The end of a drain, once in-flight work finished or timed out: cancel the runtime's own tasks,
        call the connector's ``shutdown()`` (if ``initialize`` succeeded), run ``closers`` (producers, the
        client; best effort: everything was acknowledged already), stop the HTTP server and return the exit
        code (0 clean, 1 after a fatal error)."""
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if initialized:
            try:
                await self.connector.shutdown()
            except Exception as exc:
                log.error("connector shutdown failed: %s", exc)
        for close in closers:
            try:
                await close()
            except Exception as exc:
                log.debug("closing after the drain: %s", exc)
        await self.close()
        code = 1 if self.fatal_error is not None else 0
        log.info("%s %s stopped (exit code %d)", kind, self.name, code)
        return code

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.server.stop()
