"""Reading an HTTP request body within a byte limit, for connectors that serve HTTP (the webhook and OTel
sources); the connector turns :class:`BodyTooLarge` into its own 413 answer.

The limit applies to the body as the handler sees it: aiohttp inflates ``Content-Encoding: gzip`` /
``deflate`` (and ``br`` when installed) bodies while they are read, so a small compressed body that inflates
past the limit is refused after at most ``limit`` bytes of inflated data, never inflated whole. Memory held
per request: at most ``limit`` bytes plus one chunk, whatever the application's ``client_max_size``.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["BodyTooLarge", "check_declared_length", "read_limited_body"]


class BodyTooLarge(Exception):
    """The request body is over ``limit`` bytes (declared, or found while reading); the message is the text
    both sources answer with."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit


def check_declared_length(request: web.Request, limit: int) -> None:
    """Raises BodyTooLarge when ``Content-Length`` is over ``limit`` (nothing is read); a missing header
    passes (the limit is then enforced by :func:`read_limited_body`)."""
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(limit)


async def read_limited_body(request: web.Request, limit: int) -> bytes:
    """The whole (inflated) body. Raises BodyTooLarge from ``Content-Length`` before anything is read, or
    as soon as the bytes read grow past ``limit`` (chunked bodies, compressed bodies); the rest of the body
    is then left unread (aiohttp drops it with the connection's keep-alive). Errors of the connection
    itself (the client went away, a malformed encoding) propagate as aiohttp raises them."""
    check_declared_length(request, limit)
    chunks: list[bytes] = []
    size = 0
    stream = request.content
    while True:
        chunk = await stream.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
