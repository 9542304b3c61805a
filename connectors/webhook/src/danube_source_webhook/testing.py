"""The webhook source's conformance case (danube_connect_core.testing.conformance).

:class:`WebhookUpstream` is an HTTP client posting one JSON record per request to one endpoint of the
connector (no authentication, reliable dispatch, 4 partitions) on a loopback port chosen once, so a
restarted process listens where the first one did. A 2xx answer is the acknowledgement: the record must
be on the topic once. A refused connection or a 503 (the connector is down or draining) is no
acknowledgement.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import aiohttp
from danube_connect_core.testing.conformance import PARTITIONS, SourceCase, SourceUpstream, payload

__all__ = ["CASE", "WebhookUpstream"]

PATH = "/conformance/records"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookUpstream(SourceUpstream):
    """POSTs to ``http://127.0.0.1:<port>/conformance/records``."""

    section_name = "webhook"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = _free_port()
        self._session: aiohttp.ClientSession | None = None

    def section(self, topic: str) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "endpoints": [
                {
                    "path": PATH,
                    "danube_topic": topic,
                    "partitions": PARTITIONS,
                    "reliable_dispatch": True,
                    "auth": {"type": "none"},
                }
            ],
        }

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, i: int) -> bool:
        assert self._session is not None
        try:
            async with self._session.post(f"http://127.0.0.1:{self.port}{PATH}", json=payload(i)) as answer:
                await answer.read()
                status = answer.status
        except aiohttp.ClientConnectionError:
            return False  # no process listening, or it closed the connection while stopping
        assert status in (200, 202, 503), f"record {i} answered {status}"
        return status != 503


CASE = SourceCase("webhook", idempotent=True, upstream_type=WebhookUpstream)
