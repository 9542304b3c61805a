"""PostgresCdcSource: snapshot, then stream the mapped tables' changes from a logical replication slot.

Checkpoint = LSN. Every record carries an :class:`Offset` in the ``wal`` offset partition: the last record
of a transaction carries the transaction's end LSN (just past its commit record), the others the end LSN of
the transaction handed over before it. The runtime calls :meth:`commit` only with offsets whose record and
every earlier one were acknowledged by Danube, so the slot is advanced exactly to the end of the last
transaction fully acknowledged (invariant 1): a restart resumes at the first transaction not completely
acknowledged - nothing is lost, and nothing fully delivered is read again (no duplicates by default; a
transaction delivered only in part is delivered again whole).

Snapshot records (op "r") carry offsets in the ``snapshot`` partition; the snapshot counts as completed,
in the state table, only when its last record was acknowledged (see snapshot.py for the consistency
argument between the snapshot and the stream).

Polling: each :meth:`poll` returns one snapshot chunk or the new transactions of one slot read. A slot read
re-decodes from the slot's confirmed position, so transactions handed over but not yet committed are
skipped in memory (``_handed_end``). Back-pressure (invariant 3): when more than
``10 x max_changes_per_poll`` rows are handed over but not committed, ``poll`` returns nothing until commits
catch up. Idle: transactions that touch no mapped table (and the connector's own heartbeat messages) let
the slot advance as soon as nothing handed over is outstanding, so WAL does not pile up.

Failure semantics: connection loss or a failed read raises Retryable (the runtime retries with backoff and
reconnects); a slot dropped behind the connector's back is Fatal (its position is lost). Configuration
problems found at start (wal_level, REPLICATION, missing table, a table without a usable replica identity,
missing wal2json) are ConfigError: exit 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import time
from typing import Any

import asyncpg
import orjson
from danube_connect_core import (
    ConfigError,
    ConnectorConfig,
    Fatal,
    Offset,
    ProducerConfig,
    Retryable,
    SourceConnector,
    SourceEnvelope,
    SourceRecord,
)

from danube_source_postgres_cdc.catalog import TableInfo, load_table, load_types, split_table_name
from danube_source_postgres_cdc.changes import Column, RowChange, Transaction
from danube_source_postgres_cdc.connection import open_connection
from danube_source_postgres_cdc.envelope import (
    DEBEZIUM_UNAVAILABLE,
    UNCHANGED_TOAST,
    DebeziumPosition,
    build_debezium_event,
    build_event,
    routing_key,
    row_values,
)
from danube_source_postgres_cdc.lsn import format_lsn
from danube_source_postgres_cdc.pgoutput_decoder import PgOutputDecoder, pgoutput_options
from danube_source_postgres_cdc.settings import PostgresSettings, TableMapping
from danube_source_postgres_cdc.slot import SlotClient
from danube_source_postgres_cdc.snapshot import SnapshotFilter, SnapshotReader
from danube_source_postgres_cdc.state import StateTable
from danube_source_postgres_cdc.values import ValueConverter
from danube_source_postgres_cdc.wal2json_decoder import NUMBERS_AS_STRINGS, Wal2JsonDecoder, wal2json_options

__all__ = ["PostgresCdcSource"]

log = logging.getLogger("danube_connect.postgres_cdc")

WAL = "wal"
SNAPSHOT = "snapshot"
try:
    #: ``source.version`` of Debezium envelopes: this connector's version.
    VERSION = importlib.metadata.version("danube-source-postgres-cdc")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    VERSION = "0.0.0"
_CONNECTION_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    OSError,
    ConnectionError,
    TimeoutError,
)


class PostgresCdcSource(SourceConnector):
    """PostgreSQL change data capture (logical decoding: wal2json or pgoutput) into Danube topics."""

    name = "postgres-cdc"
    config_section = "postgres"
    settings_model = PostgresSettings
    env_prefix = "POSTGRES"

    def __init__(self) -> None:
        self.settings: PostgresSettings | None = None
        self._connector_name = "postgres-cdc"
        self._file: Any = None
        self._slot: SlotClient | None = None
        self._lock = asyncio.Lock()
        self._tables: dict[tuple[str, str], TableInfo] = {}
        self._mappings: dict[tuple[str, str], TableMapping] = {}
        self._converter = ValueConverter()
        self._decoder: Wal2JsonDecoder | PgOutputDecoder | None = None
        self._options: list[str] = []
        self._state: StateTable | None = None
        self._filter: SnapshotFilter | None = None
        self._snapshot: SnapshotReader | None = None
        self._snapshot_conn: Any = None
        self._snapshot_seq = 0
        self._snapshot_total: int | None = None
        self._snapshot_acked = 0
        self._snapshot_done = True
        # Slot positions (LSNs as ints).
        self._confirmed = 0  # the slot's confirmed position, as far as we moved it
        self._acked_end = 0  # newest transaction end Danube acknowledged (from commit())
        self._handed_end = 0  # newest transaction end handed to the runtime (records or not)
        self._last_record_end = 0  # newest transaction end that produced records
        self._empty_end = 0  # newest transaction end that produced no records
        self._peeked: list[tuple[int, int]] = []
        self._last_peek_empty = False
        self._last_peek_at = 0.0
        self._last_heartbeat = 0.0
        self._heartbeat_ok = True
        self.stats = {"transactions": 0, "records": 0, "advances": 0, "heartbeats": 0}

    # -- lifecycle -----------------------------------------------------------------------------------

    async def initialize(self, config: ConnectorConfig) -> None:
        s = self.settings = config.settings_as(PostgresSettings)
        self._connector_name = config.connector_name
        self._file = config.source_file
        if s.envelope == "debezium" and s.tombstones_on_delete:
            for i, mapping in enumerate(s.table_mappings):
                if config.schema_for(mapping.danube_topic) is not None:
                    raise ConfigError(
                        f"{mapping.danube_topic} has a schema, and a tombstone (an empty payload) fits no "
                        "schema: set postgres.tombstones_on_delete = false, or drop the topic's [[schemas]]",
                        file=self._file,
                        key=f"postgres.table_mappings[{i}].danube_topic",
                    )
        conn = await open_connection(s, "slot", self._file)
        self._slot = SlotClient(conn, s, self._file)
        try:
            await self._prepare(s)
        except BaseException:
            await self.shutdown()
            raise
        log.info(
            "postgres-cdc ready: slot %s (%s) at %s, %d table(s), snapshot %s",
            s.slot_name,
            s.plugin,
            format_lsn(self._confirmed),
            len(self._tables),
            "pending" if self._snapshot is not None else "not needed",
        )

    async def _prepare(self, s: PostgresSettings) -> None:
        assert self._slot is not None
        slot = self._slot
        await slot.preflight()
        for i, mapping in enumerate(s.table_mappings):
            schema, name = split_table_name(mapping.table)
            info = await load_table(slot.conn, schema, name)
            if info is None:
                raise ConfigError(
                    f"table {schema}.{name} does not exist in database {slot.database}: create it, or fix "
                    "the table name (schema.table) in this mapping",
                    file=self._file,
                    key=f"postgres.table_mappings[{i}].table",
                )
            _check_replica_identity(info, s, self._file, f"postgres.table_mappings[{i}].table")
            self._tables[(schema, name)] = info
            self._mappings[(schema, name)] = mapping
        await load_types(slot.conn, self._converter, {o for t in self._tables.values() for _, o in t.columns})
        if s.plugin == "pgoutput":
            await slot.publication(list(self._tables.values()))
            self._decoder = PgOutputDecoder(self._tables)
            self._options = pgoutput_options(s.publication_name)
        else:
            self._decoder = Wal2JsonDecoder(self._tables)
        if s.snapshot_mode != "never":
            self._state = StateTable(slot.conn, s.state_table, s.slot_name, self._file)
            await self._state.ensure()
        slot_info = await slot.slot()  # the slot exists (position P) before any snapshot is taken
        if s.plugin == "wal2json":
            as_strings = await slot.accepts_options(NUMBERS_AS_STRINGS)
            self._options = wal2json_options(self._tables.values(), numbers_as_strings=as_strings)
            if not as_strings:
                _warn_special_numbers(self._tables.values())
        self._confirmed = self._acked_end = self._handed_end = slot_info.confirmed_lsn
        self._last_record_end = self._empty_end = slot_info.confirmed_lsn
        need_snapshot = False
        if self._state is not None:
            state = await self._state.load()
            need_snapshot = s.snapshot_mode == "always" or slot_info.created or not state.completed
            if not need_snapshot and state.snapshot:
                self._filter = SnapshotFilter.parse(state.snapshot)
        if need_snapshot:
            assert self._state is not None
            self._snapshot_conn = await open_connection(s, "snapshot", self._file)
            self._snapshot = SnapshotReader(self._snapshot_conn, list(self._tables.values()))
            text = await self._snapshot.start()
            await self._state.begin(text)
            self._filter = SnapshotFilter.parse(text)
            self._snapshot_done = False
            log.info("snapshot of %d table(s) started (snapshot %s)", len(self._tables), text)

    async def producer_configs(self) -> list[ProducerConfig]:
        assert self.settings is not None
        out: dict[str, ProducerConfig] = {}
        for m in self.settings.table_mappings:
            out.setdefault(
                m.danube_topic,
                ProducerConfig(
                    m.danube_topic,
                    partitions=m.partitions,
                    reliable_dispatch=m.reliable_dispatch,
                    max_in_flight=self.settings.max_in_flight,
                ),
            )
        return list(out.values())

    async def shutdown(self) -> None:
        if self._snapshot_conn is not None:
            with contextlib.suppress(Exception):
                await self._snapshot_conn.close(timeout=5)
            self._snapshot_conn = None
            self._snapshot = None
        if self._slot is not None:
            with contextlib.suppress(Exception):
                await self._slot.conn.close(timeout=5)

    async def health_check(self) -> None:
        if self._slot is None or self._slot.conn.is_closed():
            raise ConnectionError("not connected to PostgreSQL")

    # -- polling ---------------------------------------------------------------------------------------

    async def poll(self) -> list[SourceEnvelope]:
        async with self._lock:
            try:
                await self._ensure_connected()
                if self._snapshot is not None:
                    return await self._snapshot_chunk()
                return await self._stream()
            except _CONNECTION_ERRORS as exc:
                await self._drop_connection()
                raise Retryable(f"PostgreSQL connection lost: {type(exc).__name__}: {exc}") from exc
            except asyncpg.UndefinedObjectError as exc:
                raise Fatal(f"replication slot is gone ({exc}); its position is lost") from exc
            except asyncpg.PostgresError as exc:
                raise Retryable(f"reading the slot failed: {type(exc).__name__}: {exc}") from exc

    async def _ensure_connected(self) -> None:
        assert self._slot is not None and self.settings is not None
        if not self._slot.conn.is_closed():
            return
        if self._snapshot is not None:
            raise Fatal("the PostgreSQL connection dropped during the snapshot; restart to take a new one")
        try:
            conn = await open_connection(self.settings, "slot", self._file)
        except Fatal as exc:
            raise Retryable(str(exc)) from None
        self._slot.conn = conn
        if self._state is not None:
            self._state = StateTable(conn, self.settings.state_table, self.settings.slot_name, self._file)
        log.info("reconnected to PostgreSQL")

    async def _drop_connection(self) -> None:
        assert self._slot is not None
        with contextlib.suppress(Exception):
            self._slot.conn.terminate()

    async def _snapshot_chunk(self) -> list[SourceEnvelope]:
        assert self._snapshot is not None and self.settings is not None
        reader = self._snapshot
        n = self.settings.max_changes_per_poll
        chunk = await reader.next_chunk(n)
        out: list[SourceEnvelope] = []
        final_chunk = len(chunk) < n
        for index, (table, values) in enumerate(chunk):
            self._snapshot_seq += 1
            after, _ = row_values(self._converter, [Column(name, oid, v) for name, oid, v in values])
            last = final_chunk and index == len(chunk) - 1
            event = self._event(
                op="r",
                before=None,
                after=after,
                table=table,
                lsn=reader.wal_lsn,
                commit_ts_ms=reader.started_ms,
                tx_id=None,
                snapshot="last" if last else "true",
            )
            record = self._record(table, event, after, reader.wal_lsn)
            out.append(_envelope(record, Offset(SNAPSHOT, self._snapshot_seq)))
        if len(chunk) < n:
            await reader.finish()
            with contextlib.suppress(Exception):
                await self._snapshot_conn.close(timeout=5)
            self._snapshot = None
            self._snapshot_conn = None
            self._snapshot_total = self._snapshot_seq
            log.info("snapshot read: %d row(s); streaming from the slot", self._snapshot_total)
            await self._maybe_complete_snapshot()
        return out

    async def _maybe_complete_snapshot(self) -> None:
        if self._snapshot_done or self._snapshot_total is None:
            return
        if self._snapshot_acked >= self._snapshot_total:
            assert self._state is not None
            await self._state.complete()
            self._snapshot_done = True
            log.info("snapshot completed: %d row(s) acknowledged", self._snapshot_total)

    @property
    def _db(self) -> str:
        return self._slot.database if self._slot is not None else ""

    async def _stream(self) -> list[SourceEnvelope]:
        assert self._slot is not None and self.settings is not None and self._decoder is not None
        s = self.settings
        now = time.monotonic()
        if self._last_peek_empty and now - self._last_peek_at < s.poll_interval_ms / 1000:
            return []
        if (
            s.heartbeat_interval_ms
            and self._heartbeat_ok
            and now - self._last_heartbeat >= (s.heartbeat_interval_ms / 1000)
        ):
            self._last_heartbeat = now
            try:
                await self._slot.heartbeat()
                self.stats["heartbeats"] += 1
            except asyncpg.InsufficientPrivilegeError as exc:
                self._heartbeat_ok = False
                log.warning("heartbeat disabled: pg_logical_emit_message is not allowed (%s)", exc)
        await self._advance_idle()
        pending = sum(rows for end, rows in self._peeked if end > self._confirmed)
        if pending > 10 * s.max_changes_per_poll:
            return []  # invariant 3: wait for acknowledgements before decoding more
        rows = await self._slot.peek(self._options, s.max_changes_per_poll + pending)
        self._last_peek_at = time.monotonic()
        txns = self._decoder.decode(rows)
        self._peeked = [(t.end_lsn, t.rows) for t in txns]
        await self._learn_types(txns)
        out: list[SourceEnvelope] = []
        for txn in txns:
            if txn.end_lsn <= self._handed_end:
                continue  # handed over already, waiting for its acknowledgement
            changes = txn.changes
            if changes and self._filter is not None and self._filter.visible(txn.xid):
                changes = []  # already contained in the snapshot rows (snapshot.py)
            self.stats["transactions"] += 1
            records = self._transaction_records(changes, txn)
            if records:
                last = len(records) - 1
                for i, record in enumerate(records):
                    position = txn.end_lsn if i == last else self._handed_end
                    out.append(_envelope(record, Offset(WAL, position)))
                self._last_record_end = txn.end_lsn
            else:
                self._empty_end = txn.end_lsn
            self._handed_end = txn.end_lsn
        self._last_peek_empty = not out
        if txns:
            log.debug(
                "slot read: %d row(s), %d transaction(s), %d record(s); handed up to %s, confirmed %s",
                len(rows),
                len(txns),
                len(out),
                format_lsn(self._handed_end),
                format_lsn(self._confirmed),
            )
        if not out:
            await self._advance_idle()
        self.stats["records"] += len(out)
        return out

    async def _learn_types(self, txns: list[Transaction]) -> None:
        assert self._slot is not None
        unknown = {
            c.type_oid
            for t in txns
            for ch in t.changes
            for c in (ch.after or []) + (ch.before or [])
            if not self._converter.knows(c.type_oid)
        }
        if unknown:
            await load_types(self._slot.conn, self._converter, unknown)

    async def _advance_idle(self) -> None:
        """Advance over acknowledged transactions and, when nothing handed over is outstanding, over
        transactions that produced no records (invariant 1 holds: nothing unacknowledged lies behind)."""
        assert self._slot is not None
        target = max(self._acked_end, self._confirmed)
        if self._last_record_end <= target and self._empty_end > target:
            target = self._empty_end
        if target > self._confirmed:
            self._confirmed = await self._slot.advance(target)
            self.stats["advances"] += 1

    def _transaction_records(self, changes: list[RowChange], txn: Transaction) -> list[SourceRecord]:
        """The records of one transaction's changes, in commit order (with the Debezium envelope: a
        tombstone after each delete when configured, and TRUNCATE events; the default envelope skips a
        TRUNCATE with a warning)."""
        assert self.settings is not None
        debezium = self.settings.envelope == "debezium"
        out: list[SourceRecord] = []
        per_table: dict[tuple[str, str], int] = {}
        for change in changes:
            if change.op == "t" and not debezium:
                log.warning(
                    "TRUNCATE of %s.%s is not captured by the default envelope (no row events are emitted "
                    'for it; envelope = "debezium" emits an op "t" event)',
                    change.schema,
                    change.table,
                )
                continue
            if not debezium:
                out.append(self._change_record(change, txn))
                continue
            key = (change.schema, change.table)
            per_table[key] = per_table.get(key, 0) + 1
            position = DebeziumPosition(
                tx_id=txn.xid,
                commit_lsn=txn.end_lsn,
                previous_lsn=self._handed_end,
                total_order=sum(per_table.values()),
                data_collection_order=per_table[key],
            )
            record = self._change_record(change, txn, position)
            out.append(record)
            if change.op == "d" and self.settings.tombstones_on_delete:
                attributes = {**record.attributes, "cdc.op": "tombstone"}
                out.append(SourceRecord(record.topic, b"", "bytes", attributes=attributes, key=record.key))
        return out

    def _change_record(
        self, change: RowChange, txn: Transaction, position: DebeziumPosition | None = None
    ) -> SourceRecord:
        table = self._tables[(change.schema, change.table)]
        placeholder = DEBEZIUM_UNAVAILABLE if position is not None else UNCHANGED_TOAST
        before, _ = row_values(self._converter, change.before, toast_placeholder=placeholder)
        after, toast = row_values(self._converter, change.after, toast_placeholder=placeholder)
        event = self._event(
            op=change.op,
            before=before,
            after=after,
            table=table,
            lsn=change.lsn,
            commit_ts_ms=txn.commit_ts_ms,
            tx_id=txn.xid,
            snapshot="false",
            position=position,
            unchanged_toast=toast,
        )
        row = None if change.op == "t" else (after if change.op != "d" else before)
        return self._record(table, event, row, change.lsn)

    def _event(
        self,
        *,
        op: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        table: TableInfo,
        lsn: int,
        commit_ts_ms: int | None,
        tx_id: int | None,
        snapshot: str,
        position: DebeziumPosition | None = None,
        unchanged_toast: list[str] | None = None,
    ) -> dict[str, Any]:
        """The event in the configured envelope; ``snapshot`` is ``"true"``, ``"last"`` or ``"false"``."""
        assert self.settings is not None
        common: dict[str, Any] = {
            "op": op,
            "before": before,
            "after": after,
            "table": table,
            "db": self._db,
            "connector_name": self._connector_name,
            "lsn": lsn,
            "commit_ts_ms": commit_ts_ms,
        }
        if self.settings.envelope == "debezium":
            return build_debezium_event(**common, version=VERSION, snapshot=snapshot, position=position)
        return build_event(
            **common, tx_id=tx_id, snapshot=snapshot != "false", unchanged_toast=unchanged_toast
        )

    def _record(
        self, table: TableInfo, event: dict[str, Any], row: dict[str, Any] | None, lsn: int
    ) -> SourceRecord:
        mapping = self._mappings[(table.schema, table.name)]
        key = routing_key(table, row)
        # orjson writes json/jsonb values (Fragments) verbatim; the runtime validates these bytes against
        # the topic's schema, if any, and publishes them as they are.
        return SourceRecord(
            mapping.danube_topic,
            orjson.dumps(event),
            "bytes",
            attributes={"cdc.op": event["op"], "cdc.table": table.qualified, "cdc.lsn": format_lsn(lsn)},
            key=key,
        )

    # -- commit ----------------------------------------------------------------------------------------

    async def commit(self, offsets: list[Offset]) -> None:
        """Advance the slot to the newest acknowledged transaction end (invariant 1) and record a
        snapshot as completed once its last row is acknowledged. A failure here only delays the advance
        (it is retried on the next commit or idle poll); at worst a restart replays acknowledged changes."""
        async with self._lock:
            for offset in offsets:
                if offset.partition == WAL:
                    self._acked_end = max(self._acked_end, offset.position)
                elif offset.partition == SNAPSHOT:
                    self._snapshot_acked = max(self._snapshot_acked, offset.position)
            assert self._slot is not None
            if self._slot.conn.is_closed():
                return
            if self._acked_end > self._confirmed:
                self._confirmed = await self._slot.advance(self._acked_end)
                self.stats["advances"] += 1
            await self._maybe_complete_snapshot()


#: real, double precision, numeric (and arrays of them): the types whose NaN/Infinity wal2json < 2.6 loses.
_SPECIAL_NUMBER_TYPES = {700, 701, 1700, 1021, 1022, 1231}


def _warn_special_numbers(tables: Any) -> None:
    columns = [
        f"{t.qualified}.{name}" for t in tables for name, oid in t.columns if oid in _SPECIAL_NUMBER_TYPES
    ]
    if columns:
        log.warning(
            "this wal2json (< 2.6) writes NaN, Infinity and -Infinity as null: in %s they arrive as null "
            'from the stream (the snapshot keeps them); use postgres.plugin = "pgoutput" or wal2json >= 2.6 '
            "if these values occur",
            ", ".join(columns),
        )


def _check_replica_identity(info: TableInfo, s: PostgresSettings, file: Any, key: str) -> None:
    """Refuse a table whose UPDATEs and DELETEs cannot be captured (nothing identifies the old row).

    With REPLICA IDENTITY DEFAULT and no primary key, or NOTHING, wal2json drops those changes without a
    word, and a pgoutput publication would make the application's own UPDATE and DELETE on the table fail
    ("does not have a replica identity"): neither may happen, so the connector does not start.
    """
    if info.replica_identity == "n":
        why = "its REPLICA IDENTITY is NOTHING"
    elif info.replica_identity == "d" and not info.primary_key:
        why = "it has no primary key (REPLICA IDENTITY DEFAULT uses the primary key)"
    elif info.replica_identity == "i" and not info.has_identity_index:
        why = "the index of its REPLICA IDENTITY USING INDEX no longer exists"
    else:
        return
    consequence = (
        "a publication would make the application's UPDATE and DELETE on it fail"
        if s.plugin == "pgoutput"
        else "its UPDATEs and DELETEs would not be captured"
    )
    raise ConfigError(
        f"table {info.qualified} cannot be captured: {why}, so {consequence}. Fix it with "
        f"ALTER TABLE {info.quoted} REPLICA IDENTITY FULL (or add a primary key), then start again",
        file=file,
        key=key,
    )


def _envelope(record: SourceRecord, offset: Offset) -> SourceEnvelope:
    """The change with its ordering key: the table and the row's primary key, so that two changes of
    one row reach Danube in commit order even with ``max_in_flight`` > 1 (a snapshot row before the
    row's later changes, too); a table without a primary key is ordered as a whole."""
    table = record.attributes["cdc.table"]
    key = table if record.key is None else f"{table}:{record.key}"
    return SourceEnvelope(record, offset, ordering_key=key)
