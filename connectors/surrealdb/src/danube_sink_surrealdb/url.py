"""SurrealDB URLs: which engine a URL selects and the form the SDK expects."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

__all__ = ["EMBEDDED_SCHEMES", "SurrealUrl", "normalize_url"]

EMBEDDED_SCHEMES = ("mem", "memory", "surrealkv", "surrealkv+versioned", "file")
_SERVER_SCHEMES = ("ws", "wss", "http", "https")


@dataclass(frozen=True, slots=True)
class SurrealUrl:
    """``sdk_url`` is what ``AsyncSurreal`` gets; ``embedded`` says whether the engine runs in-process."""

    sdk_url: str
    embedded: bool

    @property
    def display(self) -> str:
        """The URL without any user:password part (safe for logs, invariant 7)."""
        parsed = urlparse(self.sdk_url)
        if parsed.password is None and parsed.username is None:
            return self.sdk_url
        host = parsed.hostname or ""
        netloc = f"{host}:{parsed.port}" if parsed.port else host
        return parsed._replace(netloc=netloc).geturl()


def normalize_url(url: str) -> SurrealUrl:
    """Map a configured URL to the SDK's form. Raises ``ValueError`` for an unusable one.

    - ``ws://``, ``wss://``: the WebSocket RPC endpoint (``/rpc`` is added when missing);
    - ``http://``, ``https://``: the HTTP RPC endpoint;
    - ``host:port`` (no scheme, as in the product documents' ``surrealdb:8000``): ``ws://host:port/rpc``;
    - ``mem://``, ``memory``, ``surrealkv://path``, ``file://path``: the embedded engine.
    """
    url = url.strip()
    if not url:
        raise ValueError("must not be empty")
    if url in ("mem", "memory"):
        return SurrealUrl("mem://", True)
    if "://" not in url:
        host, sep, port = url.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(
                "must be ws://host:port, http(s)://host:port, host:port, mem:// or surrealkv://path"
            )
        return SurrealUrl(f"ws://{url}/rpc", False)
    scheme = url.split("://", 1)[0].lower()
    if scheme in EMBEDDED_SCHEMES:
        if scheme in ("surrealkv", "surrealkv+versioned", "file") and not url.split("://", 1)[1]:
            raise ValueError(f"{scheme}:// needs a path, e.g. {scheme}://./data/surreal")
        return SurrealUrl(url, True)
    if scheme not in _SERVER_SCHEMES:
        raise ValueError(f"unsupported scheme {scheme!r} (use ws, wss, http, https, mem or surrealkv)")
    parsed = urlparse(url)
    if not parsed.hostname:
        raise ValueError("has no host")
    if scheme in ("ws", "wss") and not parsed.path.rstrip("/").endswith("/rpc"):
        url = url.rstrip("/") + "/rpc"
    return SurrealUrl(url, False)
