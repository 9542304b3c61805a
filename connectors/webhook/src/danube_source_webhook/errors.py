"""The HTTP error answers of the webhook source: one exception type carrying status, code and body.

Every error answer is JSON ``{"error": "<code>", "message": "...", ...}`` (invariant 4: bad input gets a
precise error). Messages describe what was wrong with the request and never contain a secret, a signature
or a token (invariant 7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

__all__ = ["WebhookError", "json_response"]


class WebhookError(Exception):
    """Raised inside the request pipeline; the server turns it into the response it describes.

    ``logged``: the code that raised it already logged the cause (a failed publish), so the server does
    not log the same failure again as a bare status line.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        logged: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.logged = logged
        self.extra = extra

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.code, "message": self.message, **self.extra}
        return json_response(body, self.status, self.headers)


def json_response(
    body: Mapping[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )
