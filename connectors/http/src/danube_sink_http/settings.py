"""The ``[http]`` section: the target, the body mode, retries, status codes, auth, topic mappings.

Secrets (invariant 7): the bearer token comes from ``HTTP_SINK_TOKEN`` (or the variable named by
``token_env``), the basic-auth password from ``HTTP_SINK_PASSWORD`` (or ``password_env``); writing either in
the file is refused. Header values may reference environment variables as ``${NAME}``; they are expanded
at start-up and never logged.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from danube_connect_core import EnvSecret, SinkTopicMapping
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["AuthType", "BodyMode", "HttpSettings", "HttpTopicMapping", "Method"]

Method = Literal["POST", "PUT", "PATCH", "DELETE", "GET"]
BodyMode = Literal["record", "json_array", "ndjson"]
AuthType = Literal["none", "bearer", "basic"]
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    if parts.password:
        raise ValueError("must not contain a password (use auth = 'basic' and HTTP_SINK_PASSWORD)")
    return value


class HttpTopicMapping(SinkTopicMapping):
    """``[[http.topic_mappings]]``: one subscription; ``url``, ``method`` and ``body_mode`` override
    the section's. ``include_metadata`` wraps each record as ``{"payload": ..., "metadata": {...}}``."""

    url: str | None = None
    method: Method | None = None
    body_mode: BodyMode | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class HttpSettings(BaseModel):
    """``[http]``. Environment: ``HTTP_SINK_URL``, ``HTTP_SINK_TOKEN``, ``HTTP_SINK_USERNAME``,
    ``HTTP_SINK_PASSWORD`` (env wins over TOML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    method: Method = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body_mode: BodyMode = "record"
    timeout_ms: int = Field(default=10_000, ge=1)
    max_in_flight: int = Field(default=16, ge=1, le=1024)
    #: Upper bound on a server's Retry-After (the runtime also caps every wait at retry.max_backoff_ms).
    max_retry_after_ms: int = Field(default=60_000, ge=0)
    success_codes: list[int] = Field(default_factory=lambda: list(range(200, 300)))
    drop_codes: list[int] = Field(default_factory=lambda: [400, 404, 405, 409, 410, 413, 415, 422, 501])
    idempotency_header: str = "Idempotency-Key"
    auth: AuthType = "none"
    token: SecretStr | None = None
    token_env: EnvSecret | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_env: EnvSecret | None = None
    topic_mappings: list[HttpTopicMapping] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("token", "password", mode="before")
    @classmethod
    def _secret_from_env_only(cls, value: Any) -> Any:
        # The loader hands environment overrides over as SecretStr; a plain string came from the file.
        if isinstance(value, str):
            raise ValueError("must not be written in the file: use HTTP_SINK_TOKEN / HTTP_SINK_PASSWORD")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
        return value

    @field_validator("success_codes", "drop_codes")
    @classmethod
    def _codes(cls, value: list[int]) -> list[int]:
        if any(not 100 <= c <= 599 for c in value):
            raise ValueError("HTTP status codes are between 100 and 599")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HttpSettings:
        overlap = set(self.success_codes) & set(self.drop_codes)
        if overlap:
            raise ValueError(f"codes {sorted(overlap)} are both success_codes and drop_codes")
        if self.auth == "bearer" and self.token is None and self.token_env is None:
            raise ValueError("auth = 'bearer' needs HTTP_SINK_TOKEN (or token_env)")
        if self.auth == "basic" and (
            self.username is None or (self.password is None and self.password_env is None)
        ):
            raise ValueError("auth = 'basic' needs username and HTTP_SINK_PASSWORD (or password_env)")
        seen: set[tuple[str, str]] = set()
        for m in self.topic_mappings:
            key = (m.topic, m.subscription)
            if key in seen:
                raise ValueError(f"topic {m.topic!r} with subscription {m.subscription!r} is mapped twice")
            seen.add(key)
        return self

    def secret_token(self) -> str | None:
        secret = self.token or self.token_env
        return secret.get_secret_value() if secret is not None else None

    def secret_password(self) -> str | None:
        secret = self.password or self.password_env
        return secret.get_secret_value() if secret is not None else None
