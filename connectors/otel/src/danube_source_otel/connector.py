"""OtelSource: an OTLP receiver (HTTP and gRPC) publishing traces, metrics and logs to Danube topics.

Lifecycle (as every streaming source, see docs/architecture.md §2): ``bind_runtime`` registers the metrics;
``initialize`` binds the HTTP and gRPC listeners (requests answer "unavailable, retry" until the
producers exist); ``producer_configs`` has one producer per signal topic, its in-flight bound
``max_in_flight``; ``start_streaming`` attaches the core's sender, from then on each export request awaits
its own publish (:mod:`danube_source_otel.intake`); ``shutdown`` (after the runtime drained the publishes
in flight) closes both listeners. Readiness and health are the core's (/ready, /health on the metrics port),
with this connector's ``health_check``: both listeners are up.

Delivery guarantee: at-least-once. An export is answered success only after Danube acknowledged every
message made from it; any failure answers retry-later, and an exporter retrying may publish part of a
request twice.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from danube_connect_core import (
    ConnectorConfig,
    ProducerConfig,
    RuntimeContext,
    SourceConnector,
    SourceMode,
    SourceSender,
    connector_main,
)

from danube_source_otel.grpc_server import OtlpGrpcServer
from danube_source_otel.http_server import OtlpHttpServer
from danube_source_otel.intake import Intake
from danube_source_otel.metrics import OtelMetrics
from danube_source_otel.settings import OtelSettings

__all__ = ["OtelSource", "main"]

log = logging.getLogger("danube_connect.otel")


class OtelSource(SourceConnector):
    """Receives OTLP exports and publishes them to one Danube topic per signal before answering."""

    name = "otel"
    config_section = "otel"
    settings_model = OtelSettings
    env_overrides: ClassVar[dict[str, str]] = {
        "OTEL_HOST": "host",
        "OTEL_HTTP_PORT": "http_port",
        "OTEL_GRPC_PORT": "grpc_port",
        "OTEL_AUTH_TOKEN": "token",
    }
    mode = SourceMode.STREAMING

    def __init__(self) -> None:
        self.settings: OtelSettings | None = None
        self.metrics: OtelMetrics | None = None
        self.intake: Intake | None = None
        self.http: OtlpHttpServer | None = None
        self.grpc: OtlpGrpcServer | None = None

    @property
    def http_port(self) -> int:
        return self.http.port if self.http is not None else 0

    @property
    def grpc_port(self) -> int:
        return self.grpc.port if self.grpc is not None else 0

    def bind_runtime(self, context: RuntimeContext) -> None:
        self.metrics = OtelMetrics(context.connector_name, context.metrics_registry)

    async def initialize(self, config: ConnectorConfig) -> None:
        """Bind the listeners. An address in use raises OSError (the runtime exits 1)."""
        assert self.metrics is not None  # bind_runtime ran
        settings = config.settings_as(OtelSettings)
        self.settings = settings
        self.intake = Intake(settings, self.metrics)
        if settings.auth == "none":
            log.warning("OTLP receiver accepts unauthenticated requests: set auth and OTEL_AUTH_TOKEN")
        if settings.http:
            self.http = OtlpHttpServer(self.intake, settings.host, settings.http_port)
            await self.http.start()
        if settings.grpc:
            self.grpc = OtlpGrpcServer(self.intake, settings.host, settings.grpc_port)
            await self.grpc.start()
        log.info(
            "OTLP receiver listening (http %s, grpc %s) for %s",
            self.http_port or "off",
            self.grpc_port or "off",
            ", ".join(f"{k} -> {v}" for k, v in self.intake.topics.items()),
            extra={"otel_http_port": self.http_port, "otel_grpc_port": self.grpc_port},
        )

    async def producer_configs(self) -> list[ProducerConfig]:
        s = self.settings
        assert s is not None
        window = -(-s.max_in_flight // (s.partitions or 1))  # the bound in total, per partition
        return [
            ProducerConfig(
                topic, partitions=s.partitions, reliable_dispatch=s.reliable_dispatch, max_in_flight=window
            )
            for topic in s.topics().values()
        ]

    async def start_streaming(self, sender: SourceSender) -> None:
        assert self.intake is not None
        self.intake.sender = sender

    async def health_check(self) -> None:
        for server in (self.http, self.grpc):
            if server is not None and not server.running:
                raise RuntimeError("an OTLP listener is not running")

    async def shutdown(self) -> None:
        """Close both listeners (every publish in flight is already drained)."""
        for server in (self.http, self.grpc):
            if server is not None:
                await server.stop()


def main() -> None:
    connector_main(OtelSource)
