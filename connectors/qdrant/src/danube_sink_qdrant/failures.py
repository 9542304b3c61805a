"""What a failed Qdrant call means for the runtime: retry it, refuse the data, or stop.

- ``retryable``: the server is unreachable, timed out, overloaded (408/429/5xx), or the collection
  vanished (404; it is ensured again): retried with backoff, never dead-lettered (invariant 5).
- ``invalid``: the server refused the points as malformed (400/422), or local mode raised a ValueError
  on them: the records are isolated and the bad ones dead-lettered.
- ``fatal``: the API key is refused (401/403): nothing will work until the configuration changes.
"""

from __future__ import annotations

from typing import Literal

from qdrant_client.http.exceptions import UnexpectedResponse

__all__ = ["Kind", "classify", "describe"]

Kind = Literal["retryable", "invalid", "fatal"]


def classify(exc: BaseException, *, local: bool) -> Kind:
    if isinstance(exc, UnexpectedResponse):
        status = exc.status_code or 0
        if status in (401, 403):
            return "fatal"
        if status in (400, 422):
            return "invalid"
        return "retryable"
    if local and isinstance(exc, ValueError):
        return "invalid"
    return "retryable"


def describe(exc: BaseException) -> str:
    """A short message without response bodies beyond an excerpt (no secrets are ever in them)."""
    if isinstance(exc, UnexpectedResponse):
        body = exc.content[:300].decode("utf-8", "replace")
        return f"HTTP {exc.status_code}: {body}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
