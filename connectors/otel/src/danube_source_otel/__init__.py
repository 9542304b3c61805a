"""Danube Connect OTLP source: OpenTelemetry traces, metrics and logs (OTLP over HTTP and gRPC) -> Danube
topics, answered only after Danube acknowledged."""

from danube_source_otel.connector import OtelSource, main
from danube_source_otel.settings import OtelSettings

__all__ = ["OtelSettings", "OtelSource", "main"]
