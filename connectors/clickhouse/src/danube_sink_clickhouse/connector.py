"""ClickHouseSink: Danube topics inserted into ClickHouse tables in large de-duplicated batches.

Failure semantics (what the runtime sees):

- the rows of a batch are inserted with one insert per batch (its de-duplication token derived from the
  message ids) and the runtime acks only after it returned (invariant 1); replays are dropped by the
  token and, with metadata columns, by position (see :mod:`.writer`; invariant 2);
- records that do not fit the table (missing non-nullable field, a value the column cannot take, unknown
  fields with ``unknown_fields = "reject"``) are reported with ``batch.reject`` after every other row was
  inserted (invariant 5);
- connection errors, TOO_MANY_PARTS, memory limits, timeouts -> Retryable (the same batch is retried;
  invariant 5: an outage is never dead-lettered); bad credentials, a missing table or column -> Fatal.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from danube_connect_core import (
    ConnectorConfig,
    ConsumerConfig,
    Fatal,
    Retryable,
    SinkBatch,
    SinkConnector,
    connector_main,
)

from danube_sink_clickhouse.connection import open_client, redacted
from danube_sink_clickhouse.failures import FailureKind, classify, short
from danube_sink_clickhouse.rows import RowBuilder
from danube_sink_clickhouse.settings import ClickHouseSettings, ClickHouseTopicMapping
from danube_sink_clickhouse.table_schema import describe_table
from danube_sink_clickhouse.writer import InsertFailed, TableWriter

__all__ = ["ClickHouseSink", "main"]

log = logging.getLogger("danube_sink_clickhouse")


@dataclass
class _Mapping:
    settings: ClickHouseTopicMapping
    database: str
    rows: RowBuilder | None = None
    writer: TableWriter | None = None


class ClickHouseSink(SinkConnector):
    """Inserts Danube records into ClickHouse tables (HTTP interface, or chdb:// in-process)."""

    name = "clickhouse"
    config_section = "clickhouse"
    settings_model = ClickHouseSettings
    env_prefix = "CLICKHOUSE"

    def __init__(self) -> None:
        self.settings: ClickHouseSettings | None = None
        self.client: Any = None
        self.mappings: list[_Mapping] = []

    async def initialize(self, config: ConnectorConfig) -> None:
        self.settings = config.settings_as(ClickHouseSettings)
        for m in self.settings.topic_mappings:
            mapping = _Mapping(m, m.database or self.settings.database)
            self.mappings.append(mapping)
        try:
            await self._prepare()
        except Retryable as exc:  # server not reachable yet: retried on the first batch
            log.warning("ClickHouse at %s not reachable yet: %s", redacted(self.settings.url), exc)

    async def _prepare(self) -> None:
        """Connect and read every mapped table's schema (idempotent; Retryable or Fatal on failure)."""
        if self.client is not None and all(m.writer is not None for m in self.mappings):
            return
        try:
            await asyncio.to_thread(self._prepare_sync)
        except (Fatal, Retryable):
            raise
        except Exception as exc:
            self.client = None
            if classify(exc) is FailureKind.FATAL:
                raise Fatal(f"ClickHouse refused the sink's setup: {short(exc)}") from exc
            raise Retryable(f"cannot reach ClickHouse: {short(exc)}") from exc

    def _prepare_sync(self) -> None:
        assert self.settings is not None
        if self.client is None:
            self.client = open_client(self.settings)
        insert_settings: dict[str, Any] = {"insert_deduplicate": 1}
        if self.settings.async_insert:
            insert_settings.update(async_insert=1, wait_for_async_insert=1, async_insert_deduplicate=1)
        for mapping in self.mappings:
            if mapping.writer is not None:
                continue
            m = mapping.settings
            schema = describe_table(self.client, mapping.database, m.table)
            unmapped = sorted(set(m.field_paths) - set(schema.names()))
            if unmapped:
                raise Fatal(f"{schema.qualified}: field_paths name unknown columns: {', '.join(unmapped)}")
            track = m.include_metadata and schema.has("_danube_partition") and schema.has("_danube_offset")
            if m.include_metadata and not track:
                log.warning(
                    "%s has no _danube_partition/_danube_offset columns: replays after a crash are "
                    "de-duplicated only when re-batched identically",
                    schema.qualified,
                )
            self._check_dedup_window(schema.database, schema.table)
            mapping.rows = RowBuilder(
                schema,
                include_metadata=m.include_metadata,
                field_paths=m.field_paths,
                reject_unknown=m.unknown_fields == "reject",
            )
            mapping.writer = TableWriter(
                self.client, schema, topic=m.topic, track_positions=track, insert_settings=insert_settings
            )
            log.info("mapping %s -> %s (%d columns)", m.topic, schema.qualified, len(schema.columns))

    def _check_dedup_window(self, database: str, table: str) -> None:
        result = self.client.query(
            "SELECT engine, create_table_query FROM system.tables "
            "WHERE database = {d:String} AND name = {t:String}",
            parameters={"d": database, "t": table},
        )
        if not result.result_rows:
            return
        engine, ddl = result.result_rows[0]
        plain_merge_tree = "MergeTree" in engine and not engine.startswith("Replicated")
        if plain_merge_tree and "non_replicated_deduplication_window" not in ddl:
            log.warning(
                "%s.%s is a non-replicated %s without non_replicated_deduplication_window: "
                "insert de-duplication tokens have no effect (see the README)",
                database,
                table,
                engine,
            )

    async def consumer_configs(self) -> list[ConsumerConfig]:
        return [m.settings.consumer_config(m) for m in self.mappings]

    async def write(self, batch: SinkBatch[_Mapping]) -> None:
        """Insert the rows of the batch not yet in the table; reject the records that do not fit it."""
        await self._prepare()
        mapping = batch.mapping
        assert mapping.rows is not None and mapping.writer is not None
        writer = mapping.writer
        records = list(batch.records)
        try:
            if mapping.rows.arrow:  # one Arrow table, built per column (see rows.py)
                built_table = mapping.rows.build_table(records)
                invalid = built_table.invalid
                refused = await asyncio.to_thread(
                    writer.write_table, built_table.table, built_table.records, built_table.fields
                )
            else:  # a column type without an Arrow form: Python rows
                built = mapping.rows.build(records)
                invalid = built.invalid
                refused = await asyncio.to_thread(writer.write, built.rows, built.records)
        except InsertFailed as exc:
            if exc.kind is FailureKind.FATAL:
                raise Fatal(f"insert into {writer.schema.qualified} failed: {exc}") from exc
            raise Retryable(f"insert into {writer.schema.qualified} failed: {exc}") from exc
        for record, reason in invalid + refused:
            batch.reject(record, reason)

    async def health_check(self) -> None:
        await self._prepare()
        try:
            await asyncio.to_thread(self.client.command, "SELECT 1")
        except Exception as exc:
            raise Retryable(f"ClickHouse ping failed: {short(exc)}") from exc

    async def shutdown(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            try:
                await asyncio.to_thread(client.close)
            except Exception as exc:
                log.warning("closing the ClickHouse client failed: %s", short(exc))


def main() -> None:
    connector_main(ClickHouseSink)
