"""The webhook source's own metrics, registered in the runtime's registry
(``RuntimeContext.metrics_registry``, the one the core's /metrics serves) next to the standard ones.

Names are fixed (the Grafana dashboard queries them): ``danube_webhook_requests_total{connector, endpoint,
status}`` and ``danube_webhook_request_duration_seconds{connector, endpoint}``. ``endpoint`` is the
configured path, or ``unmatched`` for paths no endpoint serves (so arbitrary URLs cannot grow the label
set).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["UNMATCHED", "WebhookMetrics"]

UNMATCHED = "unmatched"
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WebhookMetrics:
    def __init__(self, connector: str, registry: CollectorRegistry | None) -> None:
        self.connector = connector
        self.requests = Counter(
            "danube_webhook_requests",
            "Webhook requests by endpoint and HTTP status",
            ("connector", "endpoint", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "danube_webhook_request_duration_seconds",
            "Time from request to answer (includes the broker's acknowledgement)",
            ("connector", "endpoint"),
            buckets=_BUCKETS,
            registry=registry,
        )
        # labels() costs a few microseconds; the children are looked up once per endpoint and status
        self._counters: dict[tuple[str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    def declare(self, endpoint: str) -> None:
        self._timers[endpoint] = self.duration.labels(self.connector, endpoint)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        counter = self._counters.get((endpoint, status))
        if counter is None:
            counter = self._counters[(endpoint, status)] = self.requests.labels(
                self.connector, endpoint, str(status)
            )
        counter.inc()
        timer = self._timers.get(endpoint)
        if timer is None:
            timer = self._timers[endpoint] = self.duration.labels(self.connector, endpoint)
        timer.observe(seconds)
