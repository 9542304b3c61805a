"""The OTLP source's conformance case (danube_connect_core.testing.conformance).

:class:`OtelUpstream` exports one span per request over OTLP/HTTP as OTLP JSON (no authentication, reliable
dispatch, 4 partitions, gRPC off) to a loopback port chosen once, so a restarted process listens where the
first one did. Record ``i`` travels as the span attribute ``i`` and is read back from the published OTLP
JSON. A 200 is the acknowledgement: the span must be on the topic. A refused connection or a 503 (the
connector is down or draining) is no acknowledgement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from danube_connect_core.testing.conformance import PARTITIONS, SourceCase, SourceUpstream
from danube_connect_core.testing.harness import free_port

__all__ = ["CASE", "OtelUpstream"]


def export_request(i: int) -> dict[str, Any]:
    """An OTLP JSON trace export with one span carrying ``i``."""
    span = {
        "traceId": f"{i + 1:032x}",
        "spanId": f"{i + 1:016x}",
        "name": f"record-{i}",
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
        "attributes": [{"key": "i", "value": {"intValue": str(i)}}],
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": f"svc-{i % 7}"}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {}, "spans": [span]}]}]}


class OtelUpstream(SourceUpstream):
    """POSTs to ``http://127.0.0.1:<port>/v1/traces``."""

    section_name = "otel"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = free_port()
        self._session: aiohttp.ClientSession | None = None

    def section(self, topic: str) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "http_port": self.port,
            "grpc": False,
            "traces_topic": topic,
            "metrics_topic": "",
            "logs_topic": "",
            "partitions": PARTITIONS,
            "reliable_dispatch": True,
            "encoding": "json",
        }

    def received_id(self, message_payload: Any) -> int:
        span = message_payload["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        return next(int(a["value"]["intValue"]) for a in span["attributes"] if a["key"] == "i")

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, i: int) -> bool:
        assert self._session is not None
        url = f"http://127.0.0.1:{self.port}/v1/traces"
        try:
            async with self._session.post(url, json=export_request(i)) as answer:
                await answer.read()
                status = answer.status
        except aiohttp.ClientConnectionError:
            return False  # no process listening, or it closed the connection while stopping
        assert status in (200, 503), f"record {i} answered {status}"
        return status == 200


CASE = SourceCase("otel", idempotent=True, upstream_type=OtelUpstream)
