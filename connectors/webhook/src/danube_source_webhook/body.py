"""Reading a request body within ``max_body_bytes`` and checking its content type.

413 is decided from ``Content-Length`` before anything is read, and again while a chunked or compressed
body streams in (the limit counts inflated bytes; the core's ``http_body`` does both): the connector never
holds more than the limit (invariant 3). 415 unless the type is
``application/json`` or ``application/<something>+json`` with no charset or charset utf-8, or
``application/x-www-form-urlencoded`` (GitHub's "form" deliveries: the JSON document in the one field
``payload``, see :func:`form_payload`).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qs

from aiohttp import web
from danube_connect_core import http_body as core_body

from danube_source_webhook.errors import WebhookError

__all__ = ["BodyKind", "check_content_type", "check_declared_length", "form_payload", "read_body"]

BodyKind = Literal["json", "form"]
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


def _too_large(limit: int) -> WebhookError:
    return WebhookError(413, "payload_too_large", f"request body exceeds {limit} bytes", max_body_bytes=limit)


def check_declared_length(request: web.Request, limit: int) -> None:
    """WebhookError(413) when ``Content-Length`` is over ``limit`` (nothing is read)."""
    try:
        core_body.check_declared_length(request, limit)
    except core_body.BodyTooLarge:
        raise _too_large(limit) from None


def check_content_type(request: web.Request) -> BodyKind:
    """``"json"`` or ``"form"``; raises WebhookError(415) for anything else."""
    raw = request.headers.get("Content-Type")
    if not raw:
        raise WebhookError(415, "unsupported_media_type", "Content-Type must be application/json")
    media, _, params = raw.partition(";")
    media = media.strip().lower()
    kind, _, subtype = media.partition("/")
    if media == FORM_MEDIA_TYPE:
        return "form"
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        raise WebhookError(
            415,
            "unsupported_media_type",
            f"Content-Type {media or raw!r} is not JSON (application/json or application/*+json)",
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise WebhookError(415, "unsupported_media_type", "JSON bodies must be UTF-8 (charset=utf-8)")
    return "json"


def form_payload(body: bytes) -> bytes:
    """The JSON document of a form-encoded delivery (``payload=<url-encoded JSON>``, GitHub's "form"
    content type). Raises WebhookError(400) naming what is wrong; the message suggests JSON deliveries."""
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        fields = {}
    values = fields.get("payload")
    if set(fields) != {"payload"} or values is None or len(values) != 1:
        raise WebhookError(
            400,
            "invalid_form",
            "a form-encoded delivery must hold exactly one field, payload=<JSON>; "
            "better: set the webhook's content type to application/json",
        )
    return values[0].encode()


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body (inflated when it came gzip/deflate-encoded), or WebhookError(413) as soon as it
    grows past ``limit`` (see :func:`danube_connect_core.http_body.read_limited_body`)."""
    try:
        return await core_body.read_limited_body(request, limit)
    except core_body.BodyTooLarge:
        raise _too_large(limit) from None
