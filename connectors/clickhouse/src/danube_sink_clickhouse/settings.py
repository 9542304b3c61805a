"""The ``[clickhouse]`` section: connection, credentials, insert options, topic -> table mappings.

Secrets (invariant 7): ``password`` is the *name* of an environment variable in the TOML (or comes from
``CLICKHOUSE_PASSWORD`` directly); it is held as ``SecretStr`` and never logged.
"""

from __future__ import annotations

import re
from typing import Literal

from danube_connect_core import EnvSecret, SinkTopicMapping
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ClickHouseSettings", "ClickHouseTopicMapping"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClickHouseTopicMapping(SinkTopicMapping):
    """``[[clickhouse.topic_mappings]]``: one subscription inserted into one table.

    Columns come from the table itself (``DESCRIBE TABLE``): each insertable column is filled from the
    payload field of the same name (``field_paths`` maps a column to another dotted path instead).
    ``unknown_fields``: ``skip`` ignores payload fields without a column, ``reject`` dead-letters the record.
    With ``include_metadata`` the ``_danube_*`` columns the table has are filled from the message; the
    ``_danube_partition`` and ``_danube_offset`` columns are what make replays after a crash exact.
    """

    table: str
    database: str | None = None
    field_paths: dict[str, str] = Field(default_factory=dict)
    unknown_fields: Literal["skip", "reject"] = "skip"

    @field_validator("table", "database")
    @classmethod
    def _ident(cls, value: str | None) -> str | None:
        if value is not None and not _IDENT.match(value):
            raise ValueError("must be letters, digits and '_' (not starting with a digit)")
        return value


class ClickHouseSettings(BaseModel):
    """``[clickhouse]``. Environment overrides: ``CLICKHOUSE_URL``, ``CLICKHOUSE_USERNAME``,
    ``CLICKHOUSE_PASSWORD`` (env wins over TOML).

    ``url``: ``http://host:8123`` / ``https://host:8443`` (HTTP interface) or ``chdb:///path`` (the
    in-process engine, for local runs and tests; needs the ``chdb`` package).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "http://localhost:8123"
    username: str = "default"
    password: EnvSecret | None = None
    database: str = "default"
    #: Server-side batching of inserts (``async_insert=1``, always with ``wait_for_async_insert=1`` so an
    #: insert returns only once the data is in a part: invariant 1).
    async_insert: bool = False
    connect_timeout_s: float = Field(default=10.0, gt=0)
    send_receive_timeout_s: float = Field(default=300.0, gt=0)
    #: Gzip/lz4 compression of inserts over HTTP.
    compress: bool = True
    topic_mappings: list[ClickHouseTopicMapping] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "chdb://")):
            raise ValueError("must start with http://, https:// or chdb://")
        return value

    @field_validator("database")
    @classmethod
    def _db(cls, value: str) -> str:
        if not _IDENT.match(value):
            raise ValueError("must be letters, digits and '_' (not starting with a digit)")
        return value
