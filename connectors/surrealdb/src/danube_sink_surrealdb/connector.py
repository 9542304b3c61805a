"""SurrealDbSink: Danube topics to SurrealDB tables, one idempotent bulk statement per batch.

Failure semantics (what the runtime sees from :meth:`SurrealDbSink.write`):

- returns: every record of the batch is durably in SurrealDB except those reported with
  ``batch.reject``: the payload has no usable ``id_field``, or SurrealDB refuses the row (a schema, a
  type, a value). The runtime dead-letters those with the reason and acks the rest (invariants 1, 5).
- Retryable: SurrealDB is unreachable, the connection broke, the session was refused, or the table as a
  whole refuses writes. Some rows may already be written; the retry rewrites them harmlessly because the
  record ids are deterministic (invariant 2). Never dead-lettered (invariant 5).
"""

from __future__ import annotations

import logging
from typing import Any

from danube_connect_core import (
    ConfigError,
    ConnectorConfig,
    ConsumerConfig,
    Fatal,
    InvalidData,
    Retryable,
    SinkBatch,
    SinkConnector,
    SinkRecord,
    connector_main,
)

from danube_sink_surrealdb.database import SurrealDatabase
from danube_sink_surrealdb.failures import ConnectionProblem
from danube_sink_surrealdb.query_api import QueryApi
from danube_sink_surrealdb.rows import to_row
from danube_sink_surrealdb.settings import SurrealDbSettings, SurrealTopicMapping
from danube_sink_surrealdb.url import normalize_url
from danube_sink_surrealdb.writer import TableWriter

__all__ = ["SurrealDbSink", "main"]

log = logging.getLogger("danube_connect.surrealdb")


class SurrealDbSink(SinkConnector):
    """Sink connector writing Danube messages into SurrealDB tables (server or embedded engine)."""

    name = "surrealdb"
    config_section = "surrealdb"
    settings_model = SurrealDbSettings
    env_prefix = "SURREALDB"

    def __init__(self) -> None:
        self.settings: SurrealDbSettings | None = None
        self.db: SurrealDatabase | None = None
        self.mappings: list[SurrealTopicMapping] = []
        self.writers: dict[str, TableWriter[SinkRecord]] = {}
        self.query_api: QueryApi | None = None

    async def initialize(self, config: ConnectorConfig) -> None:
        """Open the database (an unreachable server is not fatal: the sink waits, not ready) and the
        optional query API. An embedded store that cannot be opened is Fatal."""
        settings = config.settings_as(SurrealDbSettings)
        self.settings = settings
        if settings.password_inline:
            log.warning(
                "surrealdb.password is written in the configuration file; prefer SURREALDB_PASSWORD or "
                "surrealdb.password_env (the environment wins over the file)"
            )
        try:
            url = normalize_url(settings.url)
        except ValueError as exc:  # validated at load time already; kept for configs built in code
            raise ConfigError(str(exc), file=config.source_file, key="surrealdb.url") from None
        if url.embedded and settings.username is not None:
            log.info("embedded SurrealDB engine: runs without authentication, username/password unused")
        self.db = SurrealDatabase(
            url,
            settings.namespace,
            settings.database,
            settings.username,
            settings.secret_password(),
            settings.request_timeout_ms / 1000,
        )
        self.mappings = list(settings.topic_mappings)
        for m in self.mappings:
            self.writers.setdefault(f"{m.table}/{m.write_mode}", TableWriter(self.db, m.table, m.write_mode))
        try:
            await self.db.connect()
        except ConnectionProblem as exc:
            if url.embedded:
                raise Fatal(f"cannot open the embedded SurrealDB store {url.display}: {exc}") from exc
            log.warning("SurrealDB at %s is not reachable yet (%s); will retry", url.display, exc)
        if settings.query_api.enabled:
            api = QueryApi(
                self.db, [m.table for m in self.mappings], settings.query_api.host, settings.query_api.port
            )
            port = await api.start()
            self.query_api = api
            log.info("read-only query API on port %d", port, extra={"query_api_port": port})

    async def consumer_configs(self) -> list[ConsumerConfig]:
        return [m.consumer_config() for m in self.mappings]

    async def write(self, batch: SinkBatch[SurrealTopicMapping]) -> None:
        """Write the batch in one statement; see the module docstring for the failure semantics."""
        mapping = batch.mapping
        pairs: list[tuple[SinkRecord, dict[str, Any]]] = []
        for record in batch.records:
            try:
                pairs.append((record, to_row(record, mapping)))
            except InvalidData as exc:
                batch.reject(record, exc.reason)
        try:
            refused = await self.writers[f"{mapping.table}/{mapping.write_mode}"].write(pairs)
        except ConnectionProblem as exc:
            raise Retryable(f"SurrealDB write to {mapping.table} failed: {exc}") from exc
        for record, why in refused:
            batch.reject(record, f"SurrealDB refused the record: {why}")

    async def health_check(self) -> None:
        """Pings SurrealDB (drives /ready); raises Retryable when it does not answer."""
        assert self.db is not None
        try:
            await self.db.ping()
        except ConnectionProblem as exc:
            raise Retryable(f"SurrealDB: {exc}") from exc

    async def shutdown(self) -> None:
        if self.query_api is not None:
            await self.query_api.stop()
            self.query_api = None
        if self.db is not None:
            await self.db.close()


def main() -> None:
    """Console script ``danube-sink-surrealdb [--config FILE] [--check]``."""
    connector_main(SurrealDbSink)
