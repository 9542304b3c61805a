"""Liveness and readiness as the runtime sees them, behind /health and /ready.

- ready: connected to Danube and the external system answers (its health_check passes and no retry of a
  Retryable is under way), the connector did not report itself not-ready (``RuntimeContext.set_ready``)
  and the runtime is not shutting down (stop intake, invariant 6).
- health status: "unhealthy" after a fatal error or an exhausted retry budget (503 on /health),
  "degraded" while not ready for a transient reason, else "healthy".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from danube_connect_core.metrics import ConnectorMetrics

__all__ = ["HealthState"]


@dataclass
class HealthState:
    metrics: ConnectorMetrics | None = None
    broker_connected: bool = False
    broker_detail: str = "not connected yet"
    target_ok: bool = False
    target_detail: str = "not checked yet"
    retrying: bool = False
    retry_detail: str = ""
    failed: bool = False
    failed_detail: str = ""
    shutting_down: bool = False
    connector_ready: bool = True
    connector_detail: str = ""
    connector_reported: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def set_broker(self, ok: bool, detail: str = "") -> None:
        detail = detail or ("connected" if ok else "disconnected")
        if ok == self.broker_connected and detail == self.broker_detail:
            return  # called after every publish: the gauge already shows this state
        self.broker_connected = ok
        self.broker_detail = detail
        self._publish()

    def set_target(self, ok: bool, detail: str = "") -> None:
        self.target_ok = ok
        self.target_detail = detail or ("ok" if ok else "unreachable")
        self._publish()

    def set_connector(self, ok: bool, detail: str = "") -> None:
        """The connector's own readiness, as it reported it (``RuntimeContext.set_ready``)."""
        self.connector_reported = True
        self.connector_ready = ok
        self.connector_detail = detail or ("ready" if ok else "not ready")
        self._publish()

    def set_retrying(self, retrying: bool, detail: str = "") -> None:
        self.retrying = retrying
        self.retry_detail = detail
        self._publish()

    def set_failed(self, detail: str) -> None:
        self.failed = True
        self.failed_detail = detail
        self._publish()

    def set_shutting_down(self) -> None:
        self.shutting_down = True
        self._publish()

    @property
    def ready(self) -> bool:
        return (
            self.broker_connected
            and self.target_ok
            and self.connector_ready
            and not self.retrying
            and not self.failed
            and not self.shutting_down
        )

    @property
    def status(self) -> str:
        if self.failed:
            return "unhealthy"
        if not (self.broker_connected and self.target_ok and self.connector_ready) or self.retrying:
            return "degraded"
        return "healthy"

    def report(self) -> dict[str, Any]:
        checks: dict[str, Any] = {
            "danube": {"ok": self.broker_connected, "detail": self.broker_detail},
            "target": {
                "ok": self.target_ok and not self.retrying,
                "detail": self.retry_detail or self.target_detail,
            },
        }
        if self.connector_reported:
            checks["connector"] = {"ok": self.connector_ready, "detail": self.connector_detail}
        if self.failed:
            checks["runtime"] = {"ok": False, "detail": self.failed_detail}
        elif self.shutting_down:
            checks["runtime"] = {"ok": True, "detail": "shutting down"}
        checks.update(self.extra)
        return {"status": self.status, "ready": self.ready, "checks": checks}

    def _publish(self) -> None:
        if self.metrics is not None:
            self.metrics.set_health(self.status)
