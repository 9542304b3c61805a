"""One HTTP request to the target, reduced to what the sink decides on: status, Retry-After, an excerpt.

Transport failures (refused, reset, DNS, timeout) raise :class:`TransportFailure`: the target is
unreachable, which is an outage, never poison (invariant 5). Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from danube_sink_http.bodies import Body

__all__ = ["HttpSender", "Reply", "TransportFailure", "display_url"]

EXCERPT_BYTES = 512


class TransportFailure(Exception):
    """The request got no HTTP answer."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    retry_after: str | None
    excerpt: str


def display_url(url: str) -> str:
    """``url`` without user info and query (either could carry a secret, invariant 7)."""
    p = urlsplit(url)
    port = f":{p.port}" if p.port else ""
    return f"{p.scheme}://{p.hostname}{port}{p.path}"


class HttpSender:
    def __init__(
        self,
        *,
        timeout_s: float,
        max_in_flight: int,
        headers: dict[str, str],
        auth: aiohttp.BasicAuth | None,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._limit = max_in_flight
        self._headers = headers
        self._auth = auth
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers=self._headers, auth=self._auth
            )
        return self._session

    async def send(self, method: str, url: str, body: Body, headers: dict[str, str]) -> Reply:
        session = self._open()
        try:
            async with session.request(
                method,
                url,
                data=body.data if method != "GET" else None,
                headers={"Content-Type": body.content_type, **headers},
                allow_redirects=False,
            ) as resp:
                excerpt = await resp.content.read(EXCERPT_BYTES)
                return Reply(resp.status, resp.headers.get("Retry-After"), excerpt.decode("utf-8", "replace"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise TransportFailure(f"{method} {display_url(url)}: {kind}") from exc

    async def probe(self, url: str, timeout_s: float) -> None:
        """Open a TCP connection to ``url``'s host and port (raises OSError / TimeoutError)."""
        p = urlsplit(url)
        port = p.port or (443 if p.scheme == "https" else 80)
        assert p.hostname is not None
        _, writer = await asyncio.wait_for(asyncio.open_connection(p.hostname, port), timeout_s)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
