"""The ``[surrealdb]`` section: connection, credentials, topic -> table mappings, the optional query API.

Secrets (invariant 7): ``password`` should come from the environment (``SURREALDB_PASSWORD``, or the
variable named by ``password_env``). An inline ``password = "..."`` in the TOML is still accepted so the
product documents' example loads as written, but it is reported with a warning at start-up; the
environment always wins over the file. The value is held as ``SecretStr`` and never logged.
"""

from __future__ import annotations

import re
from typing import Literal

from danube_connect_core import EnvSecret, SinkTopicMapping
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

__all__ = ["QueryApiSettings", "SurrealDbSettings", "SurrealTopicMapping"]

#: Table names are written into SurrealQL (backtick-quoted), so only these characters are accepted.
_TABLE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
_FIELD_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")


class SurrealTopicMapping(SinkTopicMapping):
    """``[[surrealdb.topic_mappings]]``: one subscription written into one table.

    ``id_field`` (a dotted path into the payload) makes the record id come from the payload; by default
    it is the message id (topic, partition, offset), so a redelivery rewrites the same record
    (invariant 2). ``write_mode``: ``insert`` keeps the first version of a record (``INSERT IGNORE``),
    ``upsert`` replaces it with the latest (last write wins, for ``id_field`` keyed entities).
    """

    table: str
    id_field: str | None = None
    write_mode: Literal["insert", "upsert"] = "insert"

    @field_validator("table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _TABLE.match(value):
            raise ValueError("must contain only letters, digits, '_' and '-' (and not start with '-')")
        return value

    @field_validator("id_field")
    @classmethod
    def _id_path(cls, value: str | None) -> str | None:
        if value is not None and not _FIELD_PATH.match(value):
            raise ValueError("must be a field name or a dotted path such as 'data.object.id'")
        return value


class QueryApiSettings(BaseModel):
    """``[surrealdb.query_api]``: a read-only HTTP endpoint counting rows (off by default).

    Used by ``danube-connect-demo`` (examples/payments-demo) to read the embedded store through the
    process that holds it open.
    It runs fixed, read-only queries on the mapped tables only; it never takes SurrealQL from a request.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)


class SurrealDbSettings(BaseModel):
    """``[surrealdb]``. Environment overrides: ``SURREALDB_URL``, ``SURREALDB_NAMESPACE``,
    ``SURREALDB_DATABASE``, ``SURREALDB_USERNAME``, ``SURREALDB_PASSWORD`` (env wins over TOML).

    ``url``: ``ws://host:8000``, ``wss://...``, ``http(s)://...``, a bare ``host:port`` (meaning
    ``ws://host:port/rpc``), or an embedded engine: ``mem://``, ``surrealkv://path``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    namespace: str = Field(default="default", min_length=1)
    database: str = Field(default="default", min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    password_env: EnvSecret | None = None
    request_timeout_ms: int = Field(default=30_000, ge=1)
    topic_mappings: list[SurrealTopicMapping] = Field(min_length=1)
    query_api: QueryApiSettings = Field(default_factory=QueryApiSettings)

    _password_inline: bool = PrivateAttr(default=False)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_inline_password(cls, data: object, handler: object) -> SurrealDbSettings:
        # The loader hands an environment override over as SecretStr and a TOML value as str.
        inline = isinstance(data, dict) and isinstance(data.get("password"), str)
        model: SurrealDbSettings = handler(data)  # type: ignore[operator]
        model._password_inline = inline
        return model

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from danube_sink_surrealdb.url import normalize_url

        normalize_url(value)  # raises ValueError with a readable message
        return value

    @model_validator(mode="after")
    def _unique_subscriptions(self) -> SurrealDbSettings:
        seen: set[tuple[str, str]] = set()
        for m in self.topic_mappings:
            key = (m.topic, m.subscription)
            if key in seen:
                raise ValueError(f"topic {m.topic!r} with subscription {m.subscription!r} is mapped twice")
            seen.add(key)
        return self

    @property
    def password_inline(self) -> bool:
        """True when the password was written in the TOML file itself (start-up warns about it)."""
        return self._password_inline

    def secret_password(self) -> str | None:
        """The password: ``SURREALDB_PASSWORD`` (applied by the loader) or inline, else ``password_env``."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_env is not None:
            return self.password_env.get_secret_value()
        return None
