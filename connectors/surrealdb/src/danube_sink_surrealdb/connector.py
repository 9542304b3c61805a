"""SurrealDbSink: Danube topics to SurrealDB tables, one idempotent bulk statement per batch.

Failure semantics (what the runtime sees from :meth:`SurrealDbSink.process_batch`):

- returns: every record of the batch is durably in SurrealDB; the runtime acks them (invariant 1).
- Retryable: SurrealDB is unreachable, the connection broke, the session was refused, or the table as a
  whole refuses writes. Some rows may already be written; the retry rewrites them harmlessly because the
  record ids are deterministic (invariant 2). Never dead-lettered (invariant 5).
- InvalidData naming records (``others_written=True``): those records cannot be stored (the payload has no
  usable ``id_field``, or SurrealDB refuses the row: a schema, a type, a value); every other record of the
  batch was written (invariant 5). The runtime dead-letters the named ones with the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from danube_connect_core.config import ConnectorConfig
from danube_connect_core.connector import SinkConnector
from danube_connect_core.consumer_config import ConsumerConfig
from danube_connect_core.errors import ConfigError, Fatal, InvalidData, Retryable
from danube_connect_core.lifecycle import connector_main
from danube_connect_core.mapping_index import MappingIndex
from danube_connect_core.records import SinkRecord

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
        self._index: MappingIndex[SurrealTopicMapping] = MappingIndex()

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
            self._index.add(m.topic, m.subscription, m)
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

    async def process(self, record: SinkRecord) -> None:
        """Write one record (a batch of one): see :meth:`process_batch` for the failure semantics."""
        await self.process_batch([record])

    async def process_batch(self, records: list[SinkRecord]) -> None:
        """Write ``records``, one statement per target table; see the module docstring for failures."""
        refused: list[tuple[SinkRecord, str]] = []
        for mapping, group in self._index.group(records):
            pairs: list[tuple[SinkRecord, dict[str, Any]]] = []
            for record in group:
                try:
                    pairs.append((record, to_row(record, mapping)))
                except InvalidData as exc:
                    refused.append((record, exc.reason))
            writer = self.writers[f"{mapping.table}/{mapping.write_mode}"]
            try:
                refused += await writer.write(pairs)
            except ConnectionProblem as exc:
                raise Retryable(f"SurrealDB write to {mapping.table} failed: {exc}") from exc
        if refused:
            reasons = {record.message_id: f"SurrealDB refused the record: {why}" for record, why in refused}
            bad = [record for record, _ in refused]
            raise InvalidData(reasons[bad[0].message_id], records=bad, reasons=reasons, others_written=True)

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
