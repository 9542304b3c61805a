"""The ``[postgres]`` section and its ``[[postgres.table_mappings]]``.

Environment overrides (env wins over TOML): ``POSTGRES_DSN``, ``POSTGRES_PASSWORD`` (the password itself;
in TOML ``password`` may only name an environment variable, invariant 7) and ``POSTGRES_<FIELD>`` for the
other top-level scalar fields.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from danube_connect_core import resolve_env_secret
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["PostgresSettings", "TableMapping"]

_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_QUALIFIED = re.compile(rf"^{_IDENT}(?:\.{_IDENT})?$")


class TableMapping(BaseModel):
    """One captured table and the Danube topic its changes go to."""

    model_config = ConfigDict(extra="forbid")

    #: ``schema.table`` (``public`` when the schema is left out); quote identifiers with "..." if needed.
    table: str
    danube_topic: str
    #: Partitions of the topic (None: a non-partitioned topic). The routing key is the primary key.
    partitions: int | None = Field(default=None, ge=1)
    reliable_dispatch: bool = True

    @field_validator("table")
    @classmethod
    def _qualified(cls, value: str) -> str:
        if not _QUALIFIED.match(value):
            raise ValueError('must be "schema.table" (or "table" for the public schema)')
        return value

    @field_validator("danube_topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not re.match(r"^/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", value):
            raise ValueError('must be "/namespace/topic"')
        return value


class PostgresSettings(BaseModel):
    """Connection, slot and capture settings of the PostgreSQL CDC source."""

    model_config = ConfigDict(extra="forbid")

    #: libpq-style DSN (``postgresql://user@host:5432/db``); keep the password out of it (POSTGRES_PASSWORD).
    dsn: str = "postgresql://postgres@localhost:5432/postgres"
    #: Name of an environment variable holding the password (POSTGRES_PASSWORD, when set, wins).
    password: SecretStr | None = None
    #: Logical replication slot (created when missing). Lower-case letters, digits and underscores.
    slot_name: str = "danube_cdc"
    #: Output plugin of the slot: wal2json (format 2) or PostgreSQL's built-in pgoutput.
    plugin: Literal["wal2json", "pgoutput"] = "wal2json"
    #: Publication read by pgoutput (created for the mapped tables when missing).
    publication_name: str = "danube_cdc"
    #: initial: snapshot once (until one completed); always: on every start; never: stream only.
    snapshot_mode: Literal["initial", "always", "never"] = "initial"
    #: Minimum time between two slot reads when the previous read found nothing.
    poll_interval_ms: int = Field(default=100, ge=0)
    #: Row changes asked for per slot read (whole transactions are always returned) and snapshot chunk size.
    max_changes_per_poll: int = Field(default=1000, ge=1)
    #: How often an idle connector writes a heartbeat into the WAL so the slot can advance (0: never).
    heartbeat_interval_ms: int = Field(default=10_000, ge=0)
    #: Table holding whether the snapshot of a slot completed (created when missing; not captured).
    state_table: str = "public.danube_cdc_state"
    #: Publish window per topic partition. 1 keeps the commit order per partition even across publish
    #: retries; larger windows are faster but a retried change may land after later ones.
    max_in_flight: int = Field(default=1, ge=1)
    #: ``default``: this connector's event (README, "Events"); ``debezium``: the value a Debezium PostgreSQL
    #: connector produces (JSON converter, schemas disabled), for consumers written for Debezium.
    envelope: Literal["default", "debezium"] = "default"
    #: Debezium envelope only: after each delete, a tombstone (an empty payload with the same routing key),
    #: as Debezium's ``tombstones.on.delete`` (default true) does for compacted topics.
    tombstones_on_delete: bool = True
    table_mappings: list[TableMapping] = Field(default_factory=list)

    @field_validator("password", mode="before")
    @classmethod
    def _password(cls, value: Any) -> Any:
        # TOML names an environment variable; the POSTGRES_PASSWORD override arrives as the secret itself.
        # (A plain ``SecretStr | None`` annotation, not ``EnvSecret | None``: the loader recognises it as a
        # secret field only in this form.)
        if value is None or isinstance(value, SecretStr):
            return value
        return resolve_env_secret(value)

    @field_validator("slot_name")
    @classmethod
    def _slot(cls, value: str) -> str:
        if not _SLOT_NAME.match(value):
            raise ValueError("must be 1-63 lower-case letters, digits or underscores")
        return value

    @field_validator("publication_name", "state_table")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _QUALIFIED.match(value):
            raise ValueError("must be a plain or quoted SQL identifier")
        return value

    @model_validator(mode="after")
    def _mappings(self) -> PostgresSettings:
        if not self.table_mappings:
            raise ValueError("table_mappings: add at least one [[postgres.table_mappings]] table")
        seen: set[str] = set()
        for mapping in self.table_mappings:
            if mapping.table in seen:
                raise ValueError(f"table_mappings: {mapping.table} is mapped twice")
            seen.add(mapping.table)
        return self
