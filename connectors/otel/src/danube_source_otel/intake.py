"""What both transports share: authentication, and delivering one export request to Danube.

:meth:`Intake.deliver` splits the request (:mod:`danube_source_otel.signals`), publishes every part through
the core's delivery pipeline and returns only when each part is acknowledged or dead-lettered, so the
transport answers success only after Danube has the data (invariant 1). The first part is sent with
``wait=False``: a full in-flight bound, a stopping runtime or a failed publish raises :class:`Unavailable`
at once, which the transports answer the way OTLP exporters retry on (HTTP 503 + Retry-After, gRPC
UNAVAILABLE + RetryInfo). The other parts wait at the bound (one request never overloads it alone). If a
later part fails, parts already published stay on the topic and the exporter's retry publishes them again
(at-least-once). A part the topic's schema refuses is dead-lettered by the core and its records are
reported as rejected (OTLP partial success), not retried.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from danube_connect_core import (
    ConnectorError,
    Published,
    SourceRecord,
    SourceSender,
)
from danube_connect_core.client.ratelog import RateLimitedLog
from google.protobuf.message import Message

from danube_source_otel.metrics import OtelMetrics
from danube_source_otel.settings import OtelSettings
from danube_source_otel.signals import Part, Signal, to_otlp_json

__all__ = ["Delivered", "Intake", "Unauthenticated", "Unavailable"]

log = logging.getLogger("danube_connect.otel")

ATTR_SIGNAL = "otel.signal"
ATTR_SERVICE = "otel.service.name"
ATTR_RECORDS = "otel.records"


class Unavailable(Exception):
    """Nothing (or not everything) was accepted: the exporter should retry after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unauthenticated(Exception):
    """Missing or wrong credentials (the message never contains either)."""


@dataclass(frozen=True)
class Delivered:
    accepted: int
    rejected: int
    message: str


class Intake:
    def __init__(self, settings: OtelSettings, metrics: OtelMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.topics = settings.topics()
        self.sender: SourceSender | None = None
        self._token = settings.token.get_secret_value().encode() if settings.token is not None else b""
        self._failure_log = RateLimitedLog(log, per_second=1.0, burst=5)

    def authenticate(self, headers: Mapping[str, str]) -> None:
        """Return when the request may pass; raise Unauthenticated otherwise. ``headers`` must look up
        names case-insensitively (aiohttp's headers, or lower-case gRPC metadata)."""
        if self.settings.auth == "none":
            return
        if self.settings.auth == "bearer":
            scheme, _, presented = (headers.get("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not presented.strip():
                raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
            what = "bearer token"
        else:
            presented = headers.get(self.settings.auth_header.lower()) or ""
            if not presented:
                raise Unauthenticated(f"missing API key (header {self.settings.auth_header})")
            what = "API key"
        if not hmac.compare_digest(presented.strip().encode(), self._token):
            raise Unauthenticated(f"invalid {what}")

    async def deliver(self, signal: Signal, request: Message) -> Delivered:
        """Publish ``request`` and wait for Danube; see the module docstring for every outcome."""
        topic = self.topics[signal.name]
        sender = self.sender
        retry_after = self.settings.retry_after_s
        if sender is None:
            raise Unavailable("the connector is starting; Danube producers are not ready yet", retry_after)
        parts = signal.split(request, self.settings.split)
        if not parts:
            return Delivered(0, 0, "")
        records = [self._record(topic, signal.name, part) for part in parts]
        try:
            results = [await sender.send(records[0], wait=False)]
            if len(records) > 1:
                results += await _send_all(sender, records[1:])
        except ConnectorError as exc:
            # Backpressure, ShuttingDown, Retryable (broker down after one attempt), Fatal, InvalidData
            # with tolerance none (the runtime is stopping): nothing to accept, the exporter retries.
            given = getattr(exc, "retry_after", None)
            wait = max(retry_after, math.ceil(given)) if given else retry_after
            self._failure_log.warning("%s export to %s not accepted: %s", signal.name, topic, exc)
            self.metrics.items(signal.name, "unavailable", sum(p.records for p in parts))
            raise Unavailable(
                f"Danube did not accept the {signal.name}: {type(exc).__name__}", wait
            ) from None
        rejected = sum(p.records for p, r in zip(parts, results, strict=True) if r.dead_lettered)
        total = sum(p.records for p in parts)
        self.metrics.items(signal.name, "accepted", total - rejected)
        reason = ""
        if rejected:
            self.metrics.items(signal.name, "rejected", rejected)
            first = next(r for r in results if r.dead_lettered)
            reason = f"refused by the schema of {topic} (dead-lettered): {first.dead_letter_reason or ''}"
        return Delivered(total - rejected, rejected, reason[:500])

    def _record(self, topic: str, signal: str, part: Part) -> SourceRecord:
        if self.settings.encoding == "json":
            record = SourceRecord.from_json(topic, to_otlp_json(part.request))
        else:
            record = SourceRecord.from_bytes(topic, part.request.SerializeToString())
        attributes = {ATTR_SIGNAL: signal, ATTR_RECORDS: str(part.records)}
        if part.service_name:
            attributes[ATTR_SERVICE] = part.service_name
            # one service's data stays in order on one partition
            record = record.with_key(part.service_name)
        return record.with_attributes(attributes)


async def _send_all(sender: SourceSender, records: list[SourceRecord]) -> list[Published]:
    """Send concurrently (each waits at the bound); raise the first failure once all have ended."""
    results = await asyncio.gather(*(sender.send(r) for r in records), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return [r for r in results if isinstance(r, Published)]
