"""DeltaLakeSink: Danube topics appended to Delta Lake tables, one atomic commit per batch.

Failure semantics (what the runtime sees):

- every record of a batch that converts to the mapping's columns is appended in ONE commit, together
  with the per-partition application transactions that make a replay a no-op (invariant 2, see
  :mod:`.target`); the runtime acks the batch only after that commit succeeded (invariant 1);
- records that cannot be converted (wrong type, missing non-nullable value) are reported with
  ``batch.reject`` after the others were committed: they go to the dead-letter topic, the rest of the
  batch is not held back (invariant 5). No record is ever reported for retry: the skip-by-offset above
  needs each partition written in offset order, so a failure retries the whole batch;
- storage errors, commit conflicts and anything unexpected from delta-rs -> Retryable (the same batch is
  retried; rows it already committed are skipped by their recorded offsets); a full or read-only disk
  under a local table is such an error: retried until it is writable again. A table whose schema cannot
  hold the mapping's columns, or a local table on a read-only filesystem (or in a directory this process
  may not write) at start-up -> Fatal (nothing a retry fixes), exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from danube_connect_core import (
    ConfigError,
    ConnectorConfig,
    ConsumerConfig,
    Fatal,
    Retryable,
    SinkBatch,
    SinkConnector,
    connector_main,
)

from danube_sink_deltalake.local_table import local_path, unwritable_reason
from danube_sink_deltalake.rows import RowBuilder
from danube_sink_deltalake.schema_columns import columns_from_json_schema, load_json_schema
from danube_sink_deltalake.settings import ColumnMapping, DeltaLakeSettings, DeltaTopicMapping
from danube_sink_deltalake.storage import describe, storage_options
from danube_sink_deltalake.target import DeltaTarget, SchemaConflict

__all__ = ["DeltaLakeSink", "main", "resolve_table_uri"]

log = logging.getLogger("danube_sink_deltalake")


def resolve_table_uri(table: str, root: str | None) -> str | None:
    """``table`` kept when it has a scheme or is absolute, else joined to ``root`` (None: no root)."""
    if "://" in table or Path(table).is_absolute():
        return table
    if not root:
        return None
    return f"{root.rstrip('/')}/{table.lstrip('./')}" if "://" in root else str(Path(root) / table)


@dataclass
class _Mapping:
    settings: DeltaTopicMapping
    rows: RowBuilder
    target: DeltaTarget
    opened: bool = False


class DeltaLakeSink(SinkConnector):
    """Appends Danube records to Delta Lake tables (local paths, s3://, az://, gs://)."""

    name = "delta-lake"
    config_section = "deltalake"
    settings_model = DeltaLakeSettings
    env_prefix = "DELTALAKE"

    def __init__(self) -> None:
        self.mappings: list[_Mapping] = []

    async def initialize(self, config: ConnectorConfig) -> None:
        settings = config.settings_as(DeltaLakeSettings)
        options = storage_options(settings.storage_options)
        log.info("storage options set: %s", describe(options))
        for i, m in enumerate(settings.topic_mappings):
            key = f"deltalake.topic_mappings[{i}]"
            uri = resolve_table_uri(m.table, settings.table_root)
            if uri is None:
                raise ConfigError(
                    "a relative table needs deltalake.table_root (or DELTALAKE_TABLE_ROOT)",
                    file=config.source_file,
                    key=f"{key}.table",
                )
            local = local_path(uri)
            problem = unwritable_reason(local) if local is not None else None
            if problem is not None:
                raise Fatal(f"cannot write the Delta table {uri}: {problem}")
            columns = _columns(m, config, key)
            try:
                rows = RowBuilder(columns, m.include_metadata)
            except ValueError as exc:
                raise ConfigError(str(exc), file=config.source_file, key=f"{key}.columns") from None
            target = DeltaTarget(
                uri,
                rows.schema,
                partition_by=list(m.partition_columns),
                storage_options=options,
                app_prefix=f"danube-connect/{config.connector_name}/{m.topic}",
            )
            mapping = _Mapping(m, rows, target)
            self.mappings.append(mapping)
        for mapping in self.mappings:
            try:
                await self._open(mapping)
            except Retryable as exc:  # storage not reachable yet: retried on the first batch
                log.warning("cannot open %s yet: %s", mapping.target.uri, exc)

    async def _open(self, mapping: _Mapping) -> None:
        if mapping.opened:
            return
        try:
            await asyncio.to_thread(mapping.target.open)
        except SchemaConflict as exc:
            raise Fatal(str(exc)) from exc
        except Exception as exc:
            raise Retryable(f"cannot open {mapping.target.uri}: {DeltaTarget.describe_error(exc)}") from exc
        mapping.opened = True

    async def consumer_configs(self) -> list[ConsumerConfig]:
        return [m.settings.consumer_config(m) for m in self.mappings]

    async def write(self, batch: SinkBatch[_Mapping]) -> None:
        """Append the convertible records not yet in the table in one commit; reject the others."""
        mapping = batch.mapping
        await self._open(mapping)
        built = mapping.rows.build(batch.records)
        target = mapping.target

        def commit() -> None:
            skipped, version = target.append_new(built.table, built.positions)
            if skipped:
                log.info("skipped %d rows already committed to %s (a redelivery)", skipped, target.uri)
            if version is not None:
                log.debug(
                    "committed %d rows to %s (version %d)", len(built.records) - skipped, target.uri, version
                )

        try:
            await asyncio.to_thread(commit)
        except Exception as exc:
            # Nothing was committed; positions are re-read from the table on the next attempt.
            with contextlib.suppress(Exception):
                await asyncio.to_thread(target.refresh)
            raise Retryable(f"append to {target.uri} failed: {DeltaTarget.describe_error(exc)}") from exc
        for record, reason in built.invalid:
            batch.reject(record, reason)

    async def health_check(self) -> None:
        for mapping in self.mappings:
            await self._open(mapping)

    async def shutdown(self) -> None:
        self.mappings.clear()


def _columns(m: DeltaTopicMapping, config: ConnectorConfig, key: str) -> list[ColumnMapping]:
    if m.columns:
        return list(m.columns)
    path = m.schema_file
    if path is None:
        core = config.schema_for(m.topic)
        path = core.schema_file if core is not None and core.schema_type == "json_schema" else None
    if path is None:
        raise ConfigError(
            "no columns: give columns, schema_file, or a [[schemas]] json_schema entry for the topic",
            file=config.source_file,
            key=key,
        )
    if not path.is_absolute() and config.source_file is not None:
        path = config.source_file.parent / path
    try:
        columns = columns_from_json_schema(load_json_schema(path))
    except ValueError as exc:
        raise ConfigError(str(exc), file=config.source_file, key=f"{key}.schema_file") from None
    names = {c.column for c in columns}
    unknown = [p for p in m.partition_columns if p not in names]
    if unknown:
        raise ConfigError(
            f"not among the schema's columns: {', '.join(unknown)}",
            file=config.source_file,
            key=f"{key}.partition_columns",
        )
    return columns


def main() -> None:
    connector_main(DeltaLakeSink)
