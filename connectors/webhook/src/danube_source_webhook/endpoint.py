"""One configured endpoint and the request pipeline that turns a POST into an acknowledged publish.

Order of checks (cheapest and least trusting first): method (405), rate limit (429), declared length
(413), content type (415), header authentication (401, before the body is read), body within the limit
(413), signature authentication over the raw body (401), JSON (400; a form-encoded delivery is first
unwrapped from its ``payload`` field), idempotency (replay), then the core's delivery pipeline
(:mod:`danube_connect_core.source_pipeline`): its in-flight bound (full: 503 at once), the schema (an
invalid event is dead-lettered with the reason, then answered 422 with every violation) and the broker's
ack.

What is published: the parsed JSON (re-serialised), or with ``publish_raw_body`` the body bytes exactly as
received (still validated). Attributes: the endpoint, the request id, the idempotency key when there is
one, and the headers listed in ``forward_headers`` as ``webhook.header.<lower-case name>``.

Invariant 1: the 2xx answer is built only from the broker's acknowledgement (``sender.send`` returned).
Every failure of the publish (broker unreachable after the pipeline's retries, timeout, shutdown) answers
503 with Retry-After, so the sender retries; a record may then be on the topic twice (at-least-once),
never missing after a 2xx. A 422 is answered only once the dead letter is acknowledged.
Invariant 3: the endpoint's ``max_in_flight`` is its topic's in-flight bound in the core (the one bound on
this path); a request finding it full answers 503 at once instead of queueing.
Invariant 4: nothing that failed a protocol check is handed to the runtime.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from danube_connect_core import (
    Backpressure,
    Fatal,
    InvalidData,
    PayloadKind,
    Published,
    Retryable,
    ShuttingDown,
    SourceRecord,
    SourceSender,
    exact_json,
)
from danube_connect_core.client.ratelog import RateLimitedLog
from danube_connect_core.schema_codec import JsonSchemaCodec

from danube_source_webhook.auth import Authenticator
from danube_source_webhook.body import (
    BodyKind,
    check_content_type,
    check_declared_length,
    form_payload,
    read_body,
)
from danube_source_webhook.deadlines import Deadlines
from danube_source_webhook.errors import WebhookError
from danube_source_webhook.idempotency import Claimed, IdempotencyStore, Replay
from danube_source_webhook.json_pointer import key_from, resolve
from danube_source_webhook.rate_limit import TokenBucket
from danube_source_webhook.settings import EndpointSettings

__all__ = ["Endpoint", "request_id_of"]

log = logging.getLogger("danube_connect.webhook")

ATTR_ENDPOINT = "webhook.endpoint"
ATTR_REQUEST_ID = "webhook.request_id"
ATTR_IDEMPOTENCY_KEY = "webhook.idempotency_key"
ATTR_HEADER_PREFIX = "webhook.header."
#: Longest idempotency key accepted; a longer value (from a header or the body) is not a delivery id.
MAX_IDEMPOTENCY_KEY_CHARS = 256
MAX_VALIDATION_ERRORS = 20
UNAVAILABLE_RETRY_AFTER_S = 2


@dataclass
class Endpoint:
    settings: EndpointSettings
    auth: Authenticator
    bucket: TokenBucket | None
    idempotency: IdempotencyStore | None
    key_pointer: tuple[str, ...] | None
    max_body_bytes: int
    request_timeout_s: float
    #: The topic's JSON Schema, compiled locally only to list every violation in a 422 body (the
    #: runtime's own validation decides; this only explains).
    explainer: JsonSchemaCodec | None = None
    #: The idempotency key's JSON pointer into the body, compiled once (None: headers only).
    idempotency_pointer: tuple[str, ...] | None = None
    #: Publish failures arrive once per request during an outage: a few lines per second, with a count.
    failure_log: RateLimitedLog = field(default_factory=lambda: RateLimitedLog(log, per_second=1.0, burst=5))
    #: The request deadlines (``request_timeout_s`` each), swept periodically.
    deadlines: Deadlines = field(init=False)

    def __post_init__(self) -> None:
        self.deadlines = Deadlines(self.request_timeout_s)

    @property
    def path(self) -> str:
        return self.settings.path

    @property
    def topic(self) -> str:
        return self.settings.danube_topic

    async def handle(
        self, request: web.Request, sender: SourceSender | None, request_id: str
    ) -> web.Response:
        """Run the pipeline; raises WebhookError for every non-2xx answer (the server adds ``X-Request-Id``
        to every answer)."""
        if request.method != "POST":
            raise WebhookError(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {self.path}; use POST",
                headers={"Allow": "POST"},
            )
        if self.bucket is not None:
            wait = self.bucket.try_take()
            if wait:
                raise WebhookError(
                    429,
                    "rate_limited",
                    f"rate limit of {self.bucket.rate:g}/s exceeded on {self.path}",
                    headers={"Retry-After": str(int(wait))},
                    retry_after_s=int(wait),
                )
        check_declared_length(request, self.max_body_bytes)
        body_kind = check_content_type(request)
        headers = request.headers
        if not self.auth.needs_body:
            self.auth.verify(headers, b"")
        # One deadline for the body and the broker's ack (enforced by the endpoint's periodic sweep, no
        # timer per request); the phase says which answer a timeout gets.
        phase = ["body"]
        deadline = self.deadlines.enter()
        try:
            body = await read_body(request, self.max_body_bytes)
            phase[0] = "accept"
            return await self._accept(request, body, body_kind, request_id, sender, phase)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and not deadline.expired():
                raise  # cancelled from elsewhere (shutdown, the client went away)
            if phase[0] == "body":
                raise WebhookError(
                    408, "request_timeout", "the request body did not arrive in time"
                ) from None
            if phase[0] == "duplicate":
                raise _unavailable("a request with the same idempotency key is in flight") from None
            self.failure_log.warning("publish to %s not acknowledged within the request timeout", self.topic)
            raise _unavailable("the broker did not acknowledge in time", logged=True) from None
        finally:
            self.deadlines.leave(deadline)

    async def _accept(
        self,
        request: web.Request,
        body: bytes,
        body_kind: BodyKind,
        request_id: str,
        sender: SourceSender | None,
        phase: list[str],
    ) -> web.Response:
        headers = request.headers
        if self.auth.needs_body:
            self.auth.verify(headers, body)  # over the bytes received, as the provider signed them
        if body_kind == "form":
            if self.settings.publish_raw_body:
                raise WebhookError(
                    415,
                    "unsupported_media_type",
                    f"{self.path} publishes the raw body, which must be JSON: "
                    "set the webhook's content type to application/json",
                )
            body = form_payload(body)
        try:
            value = exact_json.loads(body)  # integers beyond 64 bits stay exact (orjson would round them)
        except exact_json.JSONDecodeError as exc:
            raise WebhookError(400, "invalid_json", f"body is not valid JSON: {exc.msg}") from None

        claim: Claimed | None = None
        idem_key: str | None = None
        if self.idempotency is not None:
            idem_key = self._idempotency_key(headers, value)
            if idem_key:
                phase[0] = "duplicate"
                state = await self.idempotency.claim(idem_key)
                phase[0] = "accept"
                if isinstance(state, Replay):
                    return _json(state.status, state.body, {"Idempotent-Replayed": "true"})
                claim = state
        payload: Any = body if self.settings.publish_raw_body else value
        try:
            status, body_out = await self._publish(value, payload, headers, request_id, idem_key, sender)
        except BaseException:
            if claim is not None:
                claim.failed()
            raise
        if claim is not None:
            claim.succeeded(status, body_out)
        return _json(status, body_out, {})

    def _idempotency_key(self, headers: Any, value: Any) -> str | None:
        """The delivery's idempotency key: from the body pointer, else the first header present. A
        string or integer only (an object, a list or a huge value is no delivery id): None otherwise."""
        settings = self.settings.idempotency
        assert settings is not None
        if self.idempotency_pointer is not None:
            found = resolve(value, self.idempotency_pointer)
            if isinstance(found, str) or (isinstance(found, int) and not isinstance(found, bool)):
                text = str(found)
                if 0 < len(text) <= MAX_IDEMPOTENCY_KEY_CHARS:
                    return text
        for name in settings.headers:
            given = headers.get(name)
            if given and len(given) <= MAX_IDEMPOTENCY_KEY_CHARS:
                return str(given)
        return None

    async def _publish(
        self,
        value: Any,
        payload: Any,
        headers: Any,
        request_id: str,
        idem_key: str | None,
        sender: SourceSender | None,
    ) -> tuple[int, dict[str, Any]]:
        """Publish ``payload`` (the parsed ``value``, or the raw body bytes) and wait for the broker."""
        if sender is None:
            raise _unavailable("the connector is starting; Danube producers are not ready yet")
        attributes = {ATTR_ENDPOINT: self.path, ATTR_REQUEST_ID: request_id}
        if idem_key:
            attributes[ATTR_IDEMPOTENCY_KEY] = idem_key
        for name in self.settings.forward_headers:
            given = headers.get(name)
            if given is not None:
                attributes[ATTR_HEADER_PREFIX + name.lower()] = given
        key = key_from(value, self.key_pointer) if self.key_pointer is not None else None
        kind: PayloadKind = "bytes" if isinstance(payload, bytes) else "json"
        record = SourceRecord(self.topic, payload, kind, attributes, key)
        try:
            published = await sender.send(record, wait=False)
        except InvalidData as exc:  # tolerance = none: not dead-lettered, the connector is stopping
            raise self._schema_violation(value, exc.reason, dead_lettered=False) from None
        except (ShuttingDown, Backpressure) as exc:  # nothing was published; the broker is not at fault
            retry = math.ceil(exc.retry_after) if exc.retry_after else UNAVAILABLE_RETRY_AFTER_S
            what = "shutting down" if isinstance(exc, ShuttingDown) else "at its in-flight bound"
            raise _unavailable(f"the connector is {what}; the event was not accepted", retry) from None
        except Retryable as exc:
            self.failure_log.warning("publish to %s failed: %s", self.topic, exc)
            retry = math.ceil(exc.retry_after) if exc.retry_after else UNAVAILABLE_RETRY_AFTER_S
            raise _unavailable(
                "Danube is unavailable; the event was not accepted", retry, logged=True
            ) from None
        except Fatal as exc:
            log.error("publish to %s failed fatally: %s", self.topic, exc)
            raise _unavailable("the connector is stopping; the event was not accepted", logged=True) from None
        if published.dead_lettered:
            raise self._schema_violation(value, published.dead_letter_reason or "", dead_lettered=True)
        return self.settings.success_status, _accepted(published, self.topic, request_id)

    def _schema_violation(self, value: Any, reason: str, *, dead_lettered: bool) -> WebhookError:
        return WebhookError(
            422,
            "schema_violation",
            f"payload does not match the schema of {self.topic}",
            errors=self._explain(value, reason),
            dead_lettered=dead_lettered,
        )

    def _explain(self, value: Any, reason: str) -> list[dict[str, str]]:
        if self.explainer is not None:
            errors = self.explainer.errors(value, limit=MAX_VALIDATION_ERRORS)
            if errors:
                return errors
        return [{"path": "", "message": reason}]


def _accepted(published: Published, topic: str, request_id: str) -> dict[str, Any]:
    return {
        "status": "accepted",
        "topic": topic,
        "partition": published.partition,
        "offset": published.sequence,
        "request_id": request_id,
    }


def _unavailable(
    message: str, retry_after: int = UNAVAILABLE_RETRY_AFTER_S, *, logged: bool = False
) -> WebhookError:
    return WebhookError(
        503,
        "unavailable",
        message,
        headers={"Retry-After": str(retry_after)},
        logged=logged,
        retry_after_s=retry_after,
    )


def request_id_of(request: web.Request) -> str:
    """The caller's ``X-Request-Id`` when it is short and printable, else a new random id."""
    given = request.headers.get("X-Request-Id")
    if given and len(given) <= 128 and given.isprintable():
        return given
    return os.urandom(16).hex()  # 128 random bits, like a uuid4's hex without building a UUID object


def _json(status: int, body: dict[str, Any], headers: dict[str, str]) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )
