"""The replication slot: pre-flight checks, creation, reading (peek) and advancing.

asyncpg speaks no replication protocol, so the slot is read with ``pg_logical_slot_peek_changes`` (wal2json)
or ``pg_logical_slot_peek_binary_changes`` (pgoutput). A peek does not move the slot: the same changes come
back until ``pg_replication_slot_advance`` moves its confirmed position, which this module does only when
the connector's ``commit()`` (or its idle heartbeat, when nothing is outstanding) says so (invariant 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from danube_connect_core import ConfigError

from danube_source_postgres_cdc.catalog import TableInfo, quote_ident
from danube_source_postgres_cdc.lsn import format_lsn, parse_lsn
from danube_source_postgres_cdc.settings import PostgresSettings

__all__ = ["HEARTBEAT_PREFIX", "SlotClient", "SlotInfo"]

HEARTBEAT_PREFIX = "danube_cdc_heartbeat"


@dataclass(frozen=True, slots=True)
class SlotInfo:
    confirmed_lsn: int
    created: bool


class SlotClient:
    def __init__(self, conn: Any, settings: PostgresSettings, file: Path | None) -> None:
        self.conn = conn
        self.settings = settings
        self.file = file
        self.database = ""

    def _error(self, message: str, key: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.file, key=key)

    async def preflight(self) -> None:
        """wal_level and REPLICATION rights: each failure says exactly what to change (exit 2)."""
        row = await self.conn.fetchrow(
            "SELECT current_setting('wal_level') AS wal_level, current_database() AS db, current_user AS u,"
            " (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS may_replicate"
        )
        self.database = row["db"]
        if row["wal_level"] != "logical":
            raise self._error(
                f"PostgreSQL runs with wal_level = {row['wal_level']}; logical decoding needs "
                "wal_level = logical: set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET "
                "wal_level = logical) and restart PostgreSQL"
            )
        if not row["may_replicate"]:
            raise self._error(
                f"role {row['u']} may not use replication slots: run ALTER ROLE {quote_ident(row['u'])} "
                "WITH REPLICATION (as a superuser), or connect as a role that has REPLICATION",
                key="postgres.dsn",
            )

    async def slot(self) -> SlotInfo:
        """The slot's confirmed position, creating the slot when missing."""
        s = self.settings
        row = await self.conn.fetchrow(
            "SELECT plugin, database, slot_type, confirmed_flush_lsn::text AS lsn "
            "FROM pg_replication_slots WHERE slot_name = $1",
            s.slot_name,
        )
        if row is not None:
            if row["slot_type"] != "logical" or row["database"] != self.database:
                raise self._error(
                    f"slot {s.slot_name} exists but is not a logical slot of database {self.database}: "
                    "choose another postgres.slot_name or drop that slot",
                    key="postgres.slot_name",
                )
            if row["plugin"] != s.plugin:
                raise self._error(
                    f"slot {s.slot_name} exists with plugin {row['plugin']}, not {s.plugin}: set "
                    f'postgres.plugin = "{row["plugin"]}", or choose another slot_name, or drop the slot '
                    f"(SELECT pg_drop_replication_slot('{s.slot_name}'))",
                    key="postgres.plugin",
                )
            return SlotInfo(parse_lsn(row["lsn"]), created=False)
        try:
            lsn = await self.conn.fetchval(
                "SELECT lsn::text FROM pg_create_logical_replication_slot($1, $2)", s.slot_name, s.plugin
            )
        except asyncpg.PostgresError as exc:
            text = str(exc)
            if s.plugin == "wal2json" and ("wal2json" in text or getattr(exc, "sqlstate", "") == "58P01"):
                raise self._error(
                    "the wal2json output plugin is not installed on the PostgreSQL server: install it "
                    "(Debian/Ubuntu: apt-get install postgresql-<version>-wal2json) or set "
                    'postgres.plugin = "pgoutput"',
                    key="postgres.plugin",
                ) from None
            if isinstance(exc, asyncpg.InsufficientPrivilegeError):
                raise self._error(
                    f"cannot create replication slot {s.slot_name}: {text}; grant the role REPLICATION",
                    key="postgres.dsn",
                ) from None
            raise
        return SlotInfo(parse_lsn(lsn), created=True)

    async def publication(self, tables: Sequence[TableInfo]) -> None:
        """pgoutput only: create the publication for the mapped tables, or check it covers them."""
        name = self.settings.publication_name
        exists = await self.conn.fetchval("SELECT 1 FROM pg_publication WHERE pubname = $1", name)
        if not exists:
            await self.conn.execute(
                f"CREATE PUBLICATION {quote_ident(name)} FOR TABLE {', '.join(t.quoted for t in tables)}"
            )
            return
        rows = await self.conn.fetch(
            "SELECT schemaname::text AS s, tablename::text AS t FROM pg_publication_tables"
            " WHERE pubname = $1",
            name,
        )
        covered = {(r["s"], r["t"]) for r in rows}
        missing = [t for t in tables if (t.schema, t.name) not in covered]
        if missing:
            raise self._error(
                f"publication {name} does not include {', '.join(t.qualified for t in missing)}: run "
                f"ALTER PUBLICATION {quote_ident(name)} ADD TABLE {', '.join(t.quoted for t in missing)}",
                key="postgres.publication_name",
            )

    async def peek(self, options: list[str], max_changes: int) -> list[tuple[str, int | None, Any]]:
        fn = (
            "pg_logical_slot_peek_binary_changes"
            if self.settings.plugin == "pgoutput"
            else ("pg_logical_slot_peek_changes")
        )
        rows = await self.conn.fetch(
            f"SELECT lsn::text, xid::text::bigint, data FROM {fn}($1, NULL, $2, VARIADIC $3::text[])",
            self.settings.slot_name,
            max_changes,
            options,
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def accepts_options(self, options: list[str]) -> bool:
        """Whether the slot's output plugin accepts ``options`` (it checks them when decoding starts).

        Decodes nothing: the read ends at the slot's own confirmed position.
        """
        try:
            await self.conn.fetch(
                "SELECT 1 FROM pg_logical_slot_peek_changes($1, (SELECT confirmed_flush_lsn FROM"
                " pg_replication_slots WHERE slot_name = $1), NULL, VARIADIC $2::text[])",
                self.settings.slot_name,
                options,
            )
        except asyncpg.InvalidParameterValueError:
            return False
        return True

    async def advance(self, lsn: int) -> int:
        """Move the slot's confirmed position to ``lsn`` (passed as text, cast to pg_lsn)."""
        value = await self.conn.fetchval(
            "SELECT end_lsn::text FROM pg_replication_slot_advance($1, $2::text::pg_lsn)",
            self.settings.slot_name,
            format_lsn(lsn),
        )
        return parse_lsn(value) if value else lsn

    async def confirmed(self) -> int:
        value = await self.conn.fetchval(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            self.settings.slot_name,
        )
        return parse_lsn(value) if value else 0

    async def heartbeat(self) -> None:
        """A transactional logical message: gives the stream a transaction to advance past when the
        database is idle or busy only with tables that are not captured."""
        await self.conn.execute(
            "SELECT pg_logical_emit_message(true, $1, $2)", HEARTBEAT_PREFIX, self.settings.slot_name
        )
