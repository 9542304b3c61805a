"""The OTLP source's own metrics, in the runtime's registry (served on the core's /metrics).

``danube_otel_requests_total{connector, transport, signal, code}`` (code: HTTP status or gRPC status
name) and ``danube_otel_items_total{connector, signal, outcome}`` (spans, metric points and log records:
accepted, rejected = dead-lettered and reported as partial success, unavailable = answered retry-later).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter

__all__ = ["OtelMetrics"]


class OtelMetrics:
    def __init__(self, connector: str, registry: CollectorRegistry | None) -> None:
        self.connector = connector
        self._requests = Counter(
            "danube_otel_requests",
            "OTLP export requests by transport, signal and answer",
            ("connector", "transport", "signal", "code"),
            registry=registry,
        )
        self._items = Counter(
            "danube_otel_items",
            "OTLP spans, metric points and log records by outcome",
            ("connector", "signal", "outcome"),
            registry=registry,
        )
        self._children: dict[tuple[str, ...], Any] = {}

    def request(self, transport: str, signal: str, code: str) -> None:
        key = ("r", transport, signal, code)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._requests.labels(self.connector, transport, signal, code)
        child.inc()

    def items(self, signal: str, outcome: str, count: int) -> None:
        key = ("i", signal, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._items.labels(self.connector, signal, outcome)
        child.inc(count)
