"""The Prometheus metrics every connector exports (names listed in docs/operations.md §7).

Each runtime owns its own CollectorRegistry, so several runtimes in one process (tests) do not collide.
Labels: ``connector`` and ``topic``; errors add ``kind`` from :data:`ERROR_KINDS`.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["ERROR_KINDS", "METRIC_NAMES", "ConnectorMetrics", "ErrorKind"]

ErrorKind = Literal["retryable", "invalid_data", "fatal", "publish", "dead_letter", "schema_validation"]
ERROR_KINDS: tuple[ErrorKind, ...] = (
    "retryable",
    "invalid_data",
    "fatal",
    "publish",
    "dead_letter",
    "schema_validation",
)

METRIC_NAMES = (
    "danube_connector_messages_received_total",
    "danube_connector_messages_sent_total",
    "danube_connector_errors_total",
    "danube_connector_retries_total",
    "danube_connector_dead_lettered_total",
    "danube_connector_schema_validation_failures_total",
    "danube_connector_processing_duration_seconds",
    "danube_connector_batch_size",
    "danube_connector_inflight_messages",
    "danube_connector_health",
)

# The *_created series double the output and nothing here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

_BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

HEALTH_VALUES = {"healthy": 1.0, "degraded": 0.5, "unhealthy": 0.0}


class ConnectorMetrics:
    """The standard metrics of one connector. ``received`` counts what entered the connector (records a
    source took from its system, messages a sink took from Danube); ``sent`` counts what left it (published
    and acknowledged by the broker, or written to the target)."""

    def __init__(self, connector: str, registry: CollectorRegistry | None = None) -> None:
        self.connector = connector
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        lt = ("connector", "topic")
        self.received = Counter(
            "danube_connector_messages_received", "Messages that entered the connector", lt, registry=r
        )
        self.sent = Counter("danube_connector_messages_sent", "Messages delivered downstream", lt, registry=r)
        self.errors = Counter("danube_connector_errors", "Errors by kind", (*lt, "kind"), registry=r)
        self.retries = Counter("danube_connector_retries", "Retries after Retryable errors", lt, registry=r)
        self.dead_lettered = Counter(
            "danube_connector_dead_lettered", "Records sent to the dead-letter topic", lt, registry=r
        )
        self.schema_validation_failures = Counter(
            "danube_connector_schema_validation_failures",
            "Payloads rejected by their JSON Schema (or that could not be serialised) before publishing",
            lt,
            registry=r,
        )
        self.processing_duration = Histogram(
            "danube_connector_processing_duration_seconds",
            "Time to publish a record (sources) or write a batch (sinks)",
            lt,
            registry=r,
        )
        self.batch_size = Histogram(
            "danube_connector_batch_size", "Records per batch", lt, buckets=_BATCH_BUCKETS, registry=r
        )
        self.inflight = Gauge(
            "danube_connector_inflight_messages", "Messages taken in but not yet acknowledged", lt, registry=r
        )
        self.health = Gauge(
            "danube_connector_health", "1 healthy, 0.5 degraded, 0 unhealthy", ("connector",), registry=r
        )
        self.health.labels(connector).set(HEALTH_VALUES["healthy"])

    def declare_topic(self, topic: str) -> None:
        """Create every series of ``topic`` at zero, so /metrics shows them before the first event."""
        c = self.connector
        for metric in (
            self.received,
            self.sent,
            self.retries,
            self.dead_lettered,
            self.schema_validation_failures,
        ):
            metric.labels(c, topic)
        for kind in ERROR_KINDS:
            self.errors.labels(c, topic, kind)
        self.processing_duration.labels(c, topic)
        self.batch_size.labels(c, topic)
        self.inflight.labels(c, topic).set(0)

    def error(self, topic: str, kind: ErrorKind, n: int = 1) -> None:
        self.errors.labels(self.connector, topic, kind).inc(n)

    def set_health(self, status: str) -> None:
        self.health.labels(self.connector).set(HEALTH_VALUES[status])

    def render(self) -> bytes:
        return generate_latest(self.registry)
