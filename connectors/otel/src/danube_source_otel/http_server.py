"""OTLP/HTTP: ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs`` with ``application/x-protobuf`` or
``application/json`` bodies, optionally ``Content-Encoding: gzip``.

Answers (OTLP/HTTP specification): 200 with the signal's export response in the request's encoding
(``partial_success`` when records were rejected); errors carry a ``google.rpc.Status`` in the same encoding
(protobuf for anything that is not JSON): 400 body that is not a valid export request, 401 credentials,
404 unknown path or disabled signal, 405 not POST, 413 body (after decompression) over ``max_body_bytes``,
415 content type or encoding not OTLP, 503 + Retry-After when Danube did not accept the data (exporters
retry). aiohttp inflates gzip bodies itself; the core's ``http_body.read_limited_body`` stops reading at
``max_body_bytes`` of inflated data, so a small compressed bomb is refused without being inflated whole.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web
from danube_connect_core.http_body import BodyTooLarge, read_limited_body
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2  # type: ignore[import-untyped]

from danube_source_otel.intake import Intake, Unauthenticated, Unavailable
from danube_source_otel.signals import SIGNALS, from_otlp_json

__all__ = ["OtlpHttpServer"]

log = logging.getLogger("danube_connect.otel")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PATHS = {f"/v1/{name}": name for name in SIGNALS}
# google.rpc.Code numbers for the Status body
_CODES = {400: 3, 401: 16, 404: 5, 405: 12, 413: 8, 415: 3, 503: 14}


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class OtlpHttpServer:
    def __init__(self, intake: Intake, host: str, port: int) -> None:
        self.intake = intake
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        app = web.Application(client_max_size=self.intake.settings.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        return self.port

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        name = _PATHS.get(request.path)
        media = request.content_type  # lower-cased, parameters stripped
        as_json = media == JSON
        try:
            response = await self._export(request, name, media)
        except _Refused as exc:
            self.intake.metrics.request("http", name or "unmatched", str(exc.status))
            return _status(exc.status, str(exc), as_json, exc.headers)
        self.intake.metrics.request("http", name or "unmatched", "200")
        if as_json:
            body = orjson.dumps(json_format.MessageToDict(response, use_integers_for_enums=True))
            return web.Response(body=body, content_type=JSON)
        return web.Response(body=response.SerializeToString(), content_type=PROTOBUF)

    async def _export(self, request: web.Request, name: str | None, media: str) -> Message:
        if name is None or name not in self.intake.topics:
            raise _Refused(404, f"no OTLP endpoint at {request.path[:100]}")
        if request.method != "POST":
            raise _Refused(405, "OTLP export requests are POST", {"Allow": "POST"})
        if media not in (PROTOBUF, JSON):
            raise _Refused(415, f"Content-Type must be {PROTOBUF} or {JSON}")
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise _Refused(415, "Content-Encoding must be gzip or none")
        try:
            self.intake.authenticate(request.headers)
        except Unauthenticated as exc:
            raise _Refused(401, str(exc)) from None
        try:
            body = await read_limited_body(request, self.intake.settings.max_body_bytes)
        except BodyTooLarge as exc:
            raise _Refused(413, str(exc)) from None
        signal = SIGNALS[name]
        export: Any = signal.request_type()
        try:
            if media == JSON:
                from_otlp_json(orjson.loads(body), export)
            else:
                export.ParseFromString(body)
        except (
            DecodeError,
            ValueError,
            RecursionError,
        ) as exc:  # orjson and json_format errors are ValueErrors
            kind = "OTLP JSON" if media == JSON else "OTLP protobuf"
            raise _Refused(
                400, f"body is not a valid {kind} {signal.request_type.__name__}: {exc}"[:300]
            ) from None
        try:
            delivered = await self.intake.deliver(signal, export)
        except Unavailable as exc:
            raise _Refused(503, str(exc), {"Retry-After": str(exc.retry_after_s)}) from None
        return signal.response(delivered.rejected, delivered.message)


def _status(status: int, message: str, as_json: bool, headers: dict[str, str]) -> web.Response:
    body = status_pb2.Status(code=_CODES.get(status, 2), message=message)
    if as_json:
        return web.Response(
            status=status,
            headers=headers,
            content_type=JSON,
            body=orjson.dumps(json_format.MessageToDict(body)),
        )
    return web.Response(status=status, headers=headers, content_type=PROTOBUF, body=body.SerializeToString())
