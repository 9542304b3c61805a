"""Request authentication: none, API key, HMAC signatures (Stripe, GitHub, Standard Webhooks), bearer JWT.

An :class:`Authenticator` raises :class:`~danube_source_webhook.errors.WebhookError` (401) when a request
is not authenticated. ``needs_body`` tells the server whether it must read the raw body first (HMAC);
header-only schemes are checked before the body is read, so unauthenticated clients cannot make the
connector read their bodies. Failure messages never contain the expected or the presented secret
(invariant 7).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Protocol

import jwt

from danube_source_webhook.errors import WebhookError
from danube_source_webhook.settings import (
    ApiKeyAuthSettings,
    AuthSettings,
    HmacAuthSettings,
    JwtAuthSettings,
    NoAuthSettings,
)
from danube_source_webhook.signatures import (
    SignatureError,
    standard_secret_key,
    verify_github,
    verify_standard,
    verify_stripe,
)

__all__ = ["Authenticator", "build_authenticator"]


def _unauthorized(message: str, *, bearer: bool = False) -> WebhookError:
    headers = {"WWW-Authenticate": 'Bearer realm="webhook"'} if bearer else None
    return WebhookError(401, "unauthorized", message, headers=headers)


class Authenticator(Protocol):
    scheme: str
    needs_body: bool

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Return when authenticated, raise WebhookError(401) otherwise."""


class OpenAccess:
    scheme = "none"
    needs_body = False

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        return None


class ApiKeyAuth:
    scheme = "api_key"
    needs_body = False

    def __init__(self, settings: ApiKeyAuthSettings) -> None:
        self.header = settings.header
        self._key = settings.key.get_secret_value().encode()

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        presented = headers.get(self.header)
        if not presented:
            raise _unauthorized(f"missing API key (header {self.header})")
        if not hmac.compare_digest(presented.encode(), self._key):
            raise _unauthorized("invalid API key")


class HmacAuth:
    scheme = "hmac"
    needs_body = True

    def __init__(self, settings: HmacAuthSettings) -> None:
        self.format = settings.format
        self.tolerance_s = settings.tolerance_s
        self._secrets = [s.get_secret_value() for s in settings.secrets]
        self._standard_keys = (
            [standard_secret_key(s) for s in self._secrets] if self.format == "standard" else []
        )

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        try:
            if self.format == "stripe":
                verify_stripe(headers, body, self._secrets, now=time.time(), tolerance_s=self.tolerance_s)
            elif self.format == "github":
                verify_github(headers, body, self._secrets)
            else:
                verify_standard(
                    headers, body, self._standard_keys, now=time.time(), tolerance_s=self.tolerance_s
                )
        except SignatureError as exc:
            raise _unauthorized(str(exc)) from None


class JwtAuth:
    scheme = "jwt"
    needs_body = False

    def __init__(self, settings: JwtAuthSettings) -> None:
        self._key = settings.key
        self.algorithm = settings.algorithm
        self.issuer = settings.issuer
        self.audience = settings.audience
        self.leeway_s = settings.leeway_s

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        header = headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("missing bearer token (Authorization: Bearer <jwt>)", bearer=True)
        try:
            jwt.decode(
                token.strip(),
                self._key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_s,
                options={"verify_aud": self.audience is not None, "verify_iss": self.issuer is not None},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token expired", bearer=True) from None
        except jwt.InvalidTokenError as exc:
            # pyjwt's messages name the failed check (signature, issuer, audience), not the token or key
            raise _unauthorized(f"invalid token: {type(exc).__name__}", bearer=True) from None


def build_authenticator(settings: AuthSettings | None) -> Authenticator:
    if settings is None or isinstance(settings, NoAuthSettings):
        return OpenAccess()
    if isinstance(settings, ApiKeyAuthSettings):
        return ApiKeyAuth(settings)
    if isinstance(settings, HmacAuthSettings):
        return HmacAuth(settings)
    return JwtAuth(settings)
