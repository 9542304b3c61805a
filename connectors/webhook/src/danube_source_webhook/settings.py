"""The ``[webhook]`` section: server, endpoints, authentication, rate limits, idempotency.

Secrets (API keys, HMAC secrets, JWT secrets) are never written in the TOML: it names the environment
variables holding them (invariant 7). They are resolved when the configuration is loaded, so a missing
variable is a configuration error (exit 2) naming the variable, never showing a value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from danube_source_webhook.signatures import standard_secret_key

__all__ = [
    "API_KEY_ENV",
    "IDEMPOTENCY_PRESETS",
    "ApiKeyAuthSettings",
    "AuthSettings",
    "EndpointSettings",
    "HmacAuthSettings",
    "IdempotencySettings",
    "JwtAuthSettings",
    "NoAuthSettings",
    "RateLimitSettings",
    "WebhookSettings",
]

#: The variable that holds the API key by default, and that turns api_key auth on when no
#: ``[webhook.auth]`` table is given.
API_KEY_ENV = "WEBHOOK_API_KEY"
HMAC_SECRET_ENV = "WEBHOOK_HMAC_SECRET"
HMAC_PREVIOUS_SECRET_ENV = "WEBHOOK_HMAC_SECRET_PREVIOUS"
JWT_SECRET_ENV = "WEBHOOK_JWT_SECRET"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError("must be the name of an environment variable (the secret itself never goes in TOML)")
    return value


def _require_env(name: str) -> SecretStr:
    value = os.environ.get(name)
    if not value:
        raise ValueError(f"environment variable {name} is not set")
    return SecretStr(value)


def _optional_env(name: str | None) -> SecretStr | None:
    if name is None:
        return None
    value = os.environ.get(name)
    return SecretStr(value) if value else None


class NoAuthSettings(_Strict):
    """``type = "none"``: the endpoints are open (a warning is logged at startup)."""

    type: Literal["none"]


class ApiKeyAuthSettings(_Strict):
    """``type = "api_key"``: a shared key in a header, compared in constant time."""

    type: Literal["api_key"]
    header: str = "x-api-key"
    #: The environment variable holding the key.
    key_env: str = API_KEY_ENV
    _key: SecretStr = PrivateAttr()

    _check_name = field_validator("key_env")(_env_name)

    @model_validator(mode="after")
    def _resolve(self) -> ApiKeyAuthSettings:
        self._key = _require_env(self.key_env)
        return self

    @property
    def key(self) -> SecretStr:
        return self._key


class HmacAuthSettings(_Strict):
    """``type = "hmac"``: a signature over the raw body.

    ``format``: ``stripe`` (``Stripe-Signature: t=..,v1=..``, HMAC-SHA256 hex of ``{t}.{body}``),
    ``github`` (``X-Hub-Signature-256: sha256=<hex>`` of the body) or ``standard`` (Standard Webhooks:
    ``webhook-id``/``webhook-timestamp``/``webhook-signature: v1,<base64>`` over ``{id}.{timestamp}.{body}``
    with a ``whsec_``-prefixed base64 secret). ``tolerance_s`` bounds the signed timestamp's age (stripe,
    standard). ``previous_secret_env`` names a second secret accepted during a rotation.
    """

    type: Literal["hmac"]
    format: Literal["stripe", "github", "standard"] = "stripe"
    secret_env: str = HMAC_SECRET_ENV
    #: Naming a variable makes it required. Unset: WEBHOOK_HMAC_SECRET_PREVIOUS is read when set, but only
    #: together with the default ``secret_env``.
    previous_secret_env: str | None = None
    tolerance_s: int = Field(default=300, ge=1)
    _secrets: tuple[SecretStr, ...] = PrivateAttr()

    @field_validator("secret_env", "previous_secret_env")
    @classmethod
    def _check_names(cls, value: str | None) -> str | None:
        return None if value is None else _env_name(value)

    @model_validator(mode="after")
    def _resolve(self) -> HmacAuthSettings:
        secrets = [_require_env(self.secret_env)]
        if self.previous_secret_env is not None:
            secrets.append(_require_env(self.previous_secret_env))
        elif self.secret_env == HMAC_SECRET_ENV and (previous := _optional_env(HMAC_PREVIOUS_SECRET_ENV)):
            # the default pair only: an endpoint with its own secret never accepts the global previous one
            secrets.append(previous)
        if self.format == "standard":
            for secret in secrets:
                standard_secret_key(secret.get_secret_value())  # ValueError names no value
        self._secrets = tuple(secrets)
        return self

    @property
    def secrets(self) -> tuple[SecretStr, ...]:
        """The current secret first, then the previous one when configured."""
        return self._secrets


class JwtAuthSettings(_Strict):
    """``type = "jwt"``: ``Authorization: Bearer <token>``.

    HS256/384/512 verify with the secret in ``secret_env``; RS*/ES*/PS*/EdDSA with the PEM public key in
    ``public_key_file``. ``issuer`` and ``audience`` are checked when given; ``exp``/``nbf`` always are.
    """

    type: Literal["jwt"]
    algorithm: Literal[
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"
    ] = "HS256"
    secret_env: str | None = None
    public_key_file: Path | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway_s: int = Field(default=0, ge=0)
    _key: str = PrivateAttr()

    @field_validator("secret_env")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return None if value is None else _env_name(value)

    @model_validator(mode="after")
    def _resolve(self) -> JwtAuthSettings:
        if self.algorithm.startswith("HS"):
            if self.public_key_file is not None:
                raise ValueError(f"{self.algorithm} uses secret_env, not public_key_file")
            self._key = _require_env(self.secret_env or JWT_SECRET_ENV).get_secret_value()
        else:
            if self.public_key_file is None:
                raise ValueError(f"public_key_file is required for {self.algorithm}")
            try:
                self._key = self.public_key_file.read_text()
            except OSError as exc:
                raise ValueError(f"cannot read public_key_file: {exc.strerror}") from None
        return self

    @property
    def key(self) -> str:
        return self._key


AuthSettings = Annotated[
    NoAuthSettings | ApiKeyAuthSettings | HmacAuthSettings | JwtAuthSettings, Field(discriminator="type")
]


class RateLimitSettings(_Strict):
    """A token bucket per endpoint: ``rate_per_s`` tokens added per second, at most ``burst`` stored."""

    rate_per_s: float = Field(gt=0)
    burst: int = Field(default=0, ge=0)

    @property
    def capacity(self) -> int:
        return self.burst or max(1, int(self.rate_per_s))


#: Where each provider puts the id that stays the same across its retries of one delivery.
IDEMPOTENCY_PRESETS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    # preset: (JSON pointer into the body, request headers in order of preference)
    "stripe": ("/id", ()),  # the event id "evt_..."; Stripe sends no idempotency header with deliveries
    "github": (None, ("X-GitHub-Delivery",)),
    "standard": (None, ("webhook-id", "svix-id")),  # Standard Webhooks, and Svix's names for it
}


class IdempotencySettings(_Strict):
    """De-duplicate deliveries within ``window_s``: a repeat answers the first 2xx again.

    The key is taken from the body at the JSON pointer ``pointer`` (e.g. ``"/id"``), else from the request
    header ``header`` (default ``Idempotency-Key``). ``preset`` sets both for a provider: ``stripe`` (body
    ``/id``), ``github`` (``X-GitHub-Delivery``), ``standard`` (``webhook-id``, or Svix's ``svix-id``); it
    cannot be combined with ``pointer`` or ``header``. A delivery without a key is published without
    de-duplication.
    """

    preset: Literal["stripe", "github", "standard"] | None = None
    header: str = "Idempotency-Key"
    pointer: str | None = None
    window_s: int = Field(default=86400, ge=1)
    #: Bound on remembered keys (invariant 3); the oldest are forgotten first.
    max_entries: int = Field(default=100_000, ge=1)

    @field_validator("pointer")
    @classmethod
    def _check_pointer(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must be a JSON pointer (RFC 6901) to the key inside the body, e.g. /id")
        return value

    @model_validator(mode="after")
    def _check_preset(self) -> IdempotencySettings:
        given = self.model_fields_set & {"header", "pointer"}
        if self.preset is not None and given:
            fields = " and ".join(sorted(given))
            raise ValueError(f"preset {self.preset!r} sets the key itself; remove {fields}")
        return self

    @property
    def body_pointer(self) -> str | None:
        """The JSON pointer to read the key from, if any."""
        if self.preset is not None:
            return IDEMPOTENCY_PRESETS[self.preset][0]
        return self.pointer

    @property
    def headers(self) -> tuple[str, ...]:
        """The request headers to read the key from, in order, after the body pointer."""
        if self.preset is not None:
            return IDEMPOTENCY_PRESETS[self.preset][1]
        if self.pointer is not None and "header" not in self.model_fields_set:
            return ()  # a pointer alone: the body is the only source
        return (self.header,)


#: Request headers that carry credentials: never copied into a topic's attributes (invariant 7).
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


class EndpointSettings(_Strict):
    """``[[webhook.endpoints]]``: one POST path published to one topic."""

    path: str
    danube_topic: str
    partitions: int | None = Field(default=None, ge=1)
    reliable_dispatch: bool = False
    #: JSON pointer (RFC 6901) to the routing key inside the payload, e.g. ``"/data/object/customer"``.
    key: str | None = None
    idempotency: IdempotencySettings | None = None
    #: Per-endpoint overrides of ``[webhook.auth]`` and ``[webhook.rate_limit]``.
    auth: AuthSettings | None = None
    rate_limit: RateLimitSettings | None = None
    #: The in-flight bound of this endpoint's topic in the core's delivery pipeline, in total (spread over
    #: its partitions; endpoints sharing a topic: the largest): a request finding it full answers 503 at
    #: once (invariant 3). Default: ``[webhook]``'s.
    max_in_flight: int | None = Field(default=None, ge=1)
    #: 200 (default) or 202 on success.
    success_status: Literal[200, 202] = 200
    #: Publish the body exactly as received (the bytes a signature was computed over) instead of the
    #: parsed JSON re-serialised. The body is still parsed and validated against the topic's schema.
    publish_raw_body: bool = False
    #: Request headers copied to attributes ``webhook.header.<lower-case name>`` when present, e.g. the
    #: provider's signature and delivery id so a consumer can re-verify a raw body. Credential headers
    #: (Authorization, Cookie, the API key header) are refused.
    forward_headers: list[str] = Field(default_factory=list)

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        if value in ("/health", "/ready"):
            raise ValueError(f"{value} is reserved for the health endpoints")
        return value

    @field_validator("key")
    @classmethod
    def _check_pointer(cls, value: str | None) -> str | None:
        if value is not None and value != "" and not value.startswith("/"):
            raise ValueError("must be a JSON pointer (RFC 6901), starting with /")
        return value

    @field_validator("forward_headers")
    @classmethod
    def _check_forward_headers(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"{name!r} is not a header name")
            if name.lower() in _CREDENTIAL_HEADERS:
                raise ValueError(f"{name} carries credentials and is never copied to attributes")
        return value


class WebhookSettings(_Strict):
    """``[webhook]``. ``WEBHOOK_HOST`` and ``WEBHOOK_PORT`` override ``host`` and ``port``."""

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    #: Bound on reading the body plus the broker's acknowledgement; past it the answer is 503. The
    #: longest of the endpoints' also bounds the request head: a connection without a complete request
    #: line and headers that long after opening (or after its previous answer) is closed.
    request_timeout_ms: int = Field(default=30_000, ge=1)
    max_in_flight: int = Field(default=256, ge=1)
    auth: AuthSettings | None = None
    rate_limit: RateLimitSettings | None = None
    endpoints: list[EndpointSettings] = Field(min_length=1)
    _default_api_key: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self) -> WebhookSettings:
        seen: set[str] = set()
        for endpoint in self.endpoints:
            if endpoint.path in seen:
                raise ValueError(f"endpoint path {endpoint.path} is configured twice")
            seen.add(endpoint.path)
        if self.auth is None:
            self._default_api_key = _optional_env(API_KEY_ENV)
        for endpoint in self.endpoints:
            auth = self.effective_auth(endpoint)
            if isinstance(auth, ApiKeyAuthSettings) and auth.header.lower() in {
                h.lower() for h in endpoint.forward_headers
            }:
                raise ValueError(
                    f"endpoint {endpoint.path}: forward_headers names {auth.header}, "
                    "which carries the API key"
                )
        return self

    def effective_auth(self, endpoint: EndpointSettings) -> AuthSettings | None:
        """The endpoint's auth, else ``[webhook.auth]``, else api_key when WEBHOOK_API_KEY is set, else None
        (open)."""
        if endpoint.auth is not None:
            return endpoint.auth
        if self.auth is not None:
            return self.auth
        if self._default_api_key is not None:
            return ApiKeyAuthSettings.model_validate({"type": "api_key"})
        return None

    def effective_rate_limit(self, endpoint: EndpointSettings) -> RateLimitSettings | None:
        return endpoint.rate_limit or self.rate_limit

    def effective_max_in_flight(self, endpoint: EndpointSettings) -> int:
        return endpoint.max_in_flight or self.max_in_flight
