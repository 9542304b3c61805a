"""SqliteSink: each record of a topic becomes one row of a SQLite table.

Written only against ``danube_connect_core``'s public names; docs/writing-a-connector.md walks through
it. The runtime does everything else: consuming, batching, acks, retries, dead letters, metrics, health
endpoints, graceful shutdown.

Rows are keyed by the record's message id (``INSERT OR IGNORE``), so a redelivery after a crash writes
nothing twice (invariant 2), and a batch is one transaction, committed before :meth:`SqliteSink.write`
returns, so the runtime acks only what is on disk (invariant 1).

Failure semantics:

- a record that cannot be a row (not a JSON object, a configured field missing or not a scalar) is
  reported with ``batch.reject``: it is dead-lettered with the reason, the other records are written;
- the database busy (another process holds its lock), the disk full or failing: ``Retryable``, the
  runtime writes the whole batch again after a backoff (the transaction was rolled back, nothing of it
  is in the table) and reports not-ready meanwhile;
- anything else SQLite raises (a table that does not fit the mapping, a corrupt file): ``Fatal``, the
  connector drains and exits 1 without acking the batch.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from danube_connect_core import (
    ConnectorConfig,
    ConsumerConfig,
    Fatal,
    Retryable,
    SinkBatch,
    SinkConnector,
    SinkRecord,
    connector_main,
)

from danube_example_sqlite_sink.settings import SqliteMapping, SqliteSettings

__all__ = ["SqliteSink", "main"]


class SqliteSink(SinkConnector):
    """Rows ``(message_id, <columns>...)`` in one table per topic mapping."""

    name = "example-sqlite"
    config_section = "sqlite"
    settings_model = SqliteSettings
    env_prefix = "SQLITE"

    def __init__(self) -> None:
        self.settings: SqliteSettings | None = None
        self.db: sqlite3.Connection | None = None
        # write and health_check may overlap; the connection serves one of them at a time.
        self.db_lock = asyncio.Lock()

    async def initialize(self, config: ConnectorConfig) -> None:
        self.settings = config.settings_as(SqliteSettings)
        self.db = await asyncio.to_thread(self._open, self.settings)

    @staticmethod
    def _open(settings: SqliteSettings) -> sqlite3.Connection:
        settings.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used from worker threads one call at a time (db_lock); each write is one
        # transaction (``with db:`` commits or rolls back).
        db = sqlite3.connect(settings.path, timeout=settings.busy_timeout_ms / 1000, check_same_thread=False)
        try:
            for m in settings.topic_mappings:
                columns = "".join(f", {c}" for c in m.columns)
                db.execute(f"CREATE TABLE IF NOT EXISTS {m.table} (message_id TEXT PRIMARY KEY{columns})")
            db.commit()
        except sqlite3.Error as exc:
            db.close()
            raise Fatal(f"cannot prepare {settings.path}: {exc}") from exc
        return db

    async def consumer_configs(self) -> list[ConsumerConfig]:
        assert self.settings is not None
        # Each mapping entry comes back as batch.mapping with the batches of its subscription.
        return [m.consumer_config() for m in self.settings.topic_mappings]

    async def write(self, batch: SinkBatch[SqliteMapping]) -> None:
        mapping = batch.mapping
        rows = []
        for record in batch.records:
            row = _row(record, mapping.columns)
            if isinstance(row, str):
                batch.reject(record, row)
            else:
                rows.append(row)
        if rows:
            async with self.db_lock:
                await asyncio.to_thread(self._insert, mapping, rows)

    def _insert(self, mapping: SqliteMapping, rows: list[tuple[Any, ...]]) -> None:
        assert self.db is not None
        names = ", ".join(["message_id", *mapping.columns])
        marks = ", ".join("?" * (len(mapping.columns) + 1))
        sql = f"INSERT OR IGNORE INTO {mapping.table} ({names}) VALUES ({marks})"
        try:
            with self.db:  # one transaction: committed, or rolled back on any error
                self.db.executemany(sql, rows)
        except sqlite3.OperationalError as exc:
            # busy/locked, disk full, I/O errors: the database may take it later.
            raise Retryable(f"write to {mapping.table} failed: {exc}") from exc
        except sqlite3.Error as exc:
            raise Fatal(f"write to {mapping.table} failed: {exc}") from exc

    async def health_check(self) -> None:
        """Raises Retryable while the database cannot take a write lock (drives /ready)."""
        async with self.db_lock:
            await asyncio.to_thread(self._probe)

    def _probe(self) -> None:
        assert self.db is not None
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.rollback()
        except sqlite3.Error as exc:
            raise Retryable(f"database not writable: {exc}") from exc

    async def shutdown(self) -> None:
        async with self.db_lock:
            if self.db is not None:
                await asyncio.to_thread(self.db.close)
                self.db = None


def _row(record: SinkRecord, columns: list[str]) -> tuple[Any, ...] | str:
    """The row of ``record``, or the reason it cannot be one."""
    payload = record.payload
    if not isinstance(payload, dict):
        return f"payload must be a JSON object, got {type(payload).__name__}"
    values: list[Any] = [record.message_id]
    for column in columns:
        if column not in payload:
            return f"field {column!r} is missing"
        value = payload[column]
        if isinstance(value, dict | list):
            kind = type(value).__name__
            return f"field {column!r} is a {kind}; a column takes a string, number, boolean or null"
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            return f"field {column!r} does not fit a 64-bit integer"
        values.append(value)
    return tuple(values)


def main() -> None:
    """The console script: ``danube-example-sqlite-sink`` reads the TOML at ``$CONNECTOR_CONFIG_PATH``."""
    connector_main(SqliteSink)
