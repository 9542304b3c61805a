"""Idempotent, de-duplicated batch inserts into one table, isolating rows the table refuses.

Idempotency (invariant 2), two layers:

1. Every insert carries ``insert_deduplication_token`` = a hash of the message ids it holds, so repeating
   the *same* insert (a retry after a timeout whose insert did land, a replay cut the same way) is dropped
   by the server. This needs a Replicated*MergeTree table, or a MergeTree with the table setting
   ``non_replicated_deduplication_window`` > 0 (the sink warns at start-up when it is missing).
2. When the table has ``_danube_partition`` and ``_danube_offset`` columns (``include_metadata``), the writer
   knows, per partition, the highest offset the table holds (read once, then kept up to date). Rows at or
   below it are looked up by (partition, offset) before inserting and the ones already present are
   skipped. That makes a redelivery after a crash exact however the broker re-batches it, and whatever
   part of an earlier insert landed. Rows above it cannot be in the table (a single writer per partition).

A data error (a value the column cannot take) on a multi-row insert is narrowed down by bisection with the
same deterministic tokens, so only the bad rows are reported and every other row is inserted.
Two insert forms: :meth:`TableWriter.write_table` inserts one Arrow table (``insert_arrow``: ClickHouse
reads the columns as they are, and replays, positions and tokens are computed on the arrays); :meth:`write`
inserts Python rows (``client.insert``) for tables with a column type that has no Arrow form. The token of
a batch is the same in both forms (a hash of its message ids), so a replay de-duplicates across them.
All methods block (clickhouse-connect's sync client); the connector runs them in a worker thread.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
from danube_connect_core import SinkRecord
from danube_connect_core import columns as col

from danube_sink_clickhouse.failures import FailureKind, classify, short
from danube_sink_clickhouse.table_schema import TableSchema

__all__ = ["InsertFailed", "TableWriter", "dedup_token"]

log = logging.getLogger("danube_sink_clickhouse.writer")

Rows = list[list[Any]]


class InsertFailed(Exception):
    """An insert failed for a reason other than bad data (``kind`` is RETRYABLE or FATAL)."""

    def __init__(self, kind: FailureKind, cause: BaseException) -> None:
        super().__init__(short(cause))
        self.kind = kind


def dedup_token(records: Sequence[SinkRecord]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(r.message_id.encode())
        h.update(b"\n")
    return f"danube-{h.hexdigest()[:40]}"


class TableWriter:
    def __init__(
        self,
        client: Any,
        schema: TableSchema,
        *,
        topic: str,
        track_positions: bool,
        insert_settings: Mapping[str, Any],
    ) -> None:
        self.client = client
        self.schema = schema
        self.topic = topic
        self.track_positions = track_positions
        self.insert_settings = dict(insert_settings)
        self._topic_filter = schema.has("_danube_topic")
        self._high: dict[int, int | None] = {}

    # -- positions ----------------------------------------------------------------------------------

    def _where(self, partition: int) -> str:
        clause = f"_danube_partition = {int(partition)}"
        if self._topic_filter:
            clause += " AND _danube_topic = {topic:String}"
        return clause

    def high_water(self, partition: int) -> int | None:
        if partition not in self._high:
            result = self.client.query(
                f"SELECT max(_danube_offset), count() FROM {self.schema.qualified} "
                f"WHERE {self._where(partition)}",
                parameters={"topic": self.topic},
            )
            top, count = result.result_rows[0]
            self._high[partition] = int(top) if count else None
        return self._high[partition]

    def present(self, partition: int, offsets: Sequence[int]) -> set[int]:
        """Which of ``offsets`` of ``partition`` the table already holds."""
        result = self.client.query(
            f"SELECT DISTINCT _danube_offset FROM {self.schema.qualified} WHERE {self._where(partition)} "
            f"AND _danube_offset BETWEEN {int(min(offsets))} AND {int(max(offsets))}",
            parameters={"topic": self.topic},
        )
        wanted = set(offsets)
        return {int(row[0]) for row in result.result_rows if int(row[0]) in wanted}

    def forget_positions(self) -> None:
        self._high.clear()

    def _fresh(
        self, rows: list[list[Any]], records: list[SinkRecord]
    ) -> tuple[list[list[Any]], list[SinkRecord]]:
        """Drop the rows the table already holds (replays); see the module docstring."""
        suspects: dict[int, list[int]] = {}
        for r in records:
            p = r.partition if r.partition is not None else -1
            high = self.high_water(p)
            if high is not None and r.offset <= high:
                suspects.setdefault(p, []).append(r.offset)
        if not suspects:
            return rows, records
        held = {(p, o) for p, offs in suspects.items() for o in self.present(p, offs)}
        if not held:
            return rows, records
        keep = [
            i
            for i, r in enumerate(records)
            if (r.partition if r.partition is not None else -1, r.offset) not in held
        ]
        log.info(
            "skipped %d rows already in %s (a redelivery)", len(records) - len(keep), self.schema.qualified
        )
        return [rows[i] for i in keep], [records[i] for i in keep]

    # -- inserting ----------------------------------------------------------------------------------

    def write(self, rows: list[list[Any]], records: list[SinkRecord]) -> list[tuple[SinkRecord, str]]:
        """Insert the rows not yet in the table; returns the records the table refused, with reasons.

        Raises InsertFailed (RETRYABLE or FATAL) when the table could not be written; what was inserted
        before that is found again by the next attempt (tokens and positions), never duplicated.
        """
        try:
            if self.track_positions:
                rows, records = self._fresh(rows, records)
        except Exception as exc:
            self.forget_positions()
            kind = FailureKind.FATAL if classify(exc) is FailureKind.FATAL else FailureKind.RETRYABLE
            raise InsertFailed(kind, exc) from exc
        if not rows:
            return []
        return self._insert_isolating(rows, records)

    def _insert_isolating(
        self, rows: list[list[Any]], records: list[SinkRecord]
    ) -> list[tuple[SinkRecord, str]]:
        try:
            self._insert(rows, records)
            return []
        except InsertFailed:
            raise
        except Exception as exc:
            kind = classify(exc)
            if kind is not FailureKind.DATA:
                self.forget_positions()
                raise InsertFailed(kind, exc) from exc
            if len(rows) == 1:
                return [(records[0], f"refused by {self.schema.qualified}: {short(exc)}")]
        mid = len(rows) // 2
        return self._insert_isolating(rows[:mid], records[:mid]) + self._insert_isolating(
            rows[mid:], records[mid:]
        )

    # -- the Arrow form -----------------------------------------------------------------------------

    def write_table(
        self, table: pa.Table, records: list[SinkRecord], fields: col.RecordFields
    ) -> list[tuple[SinkRecord, str]]:
        """:meth:`write` for an Arrow table: ``records`` and ``fields`` are aligned with its rows.

        Same failure semantics as :meth:`write` (refused records returned with reasons; InsertFailed).
        """
        batch = _ArrowBatch(
            table, records, fields.partitions.fill_null(-1), fields.offsets, fields.message_ids
        )
        try:
            if self.track_positions:
                batch = self._fresh_table(batch)
        except Exception as exc:
            self.forget_positions()
            kind = FailureKind.FATAL if classify(exc) is FailureKind.FATAL else FailureKind.RETRYABLE
            raise InsertFailed(kind, exc) from exc
        if batch.table.num_rows == 0:
            return []
        return self._insert_table_isolating(batch)

    def _fresh_table(self, batch: _ArrowBatch) -> _ArrowBatch:
        """Drop the rows the table already holds (replays), per partition on the arrays."""
        held = None
        for p in pc.unique(batch.partitions).to_pylist():
            high = self.high_water(p)
            if high is None:
                continue
            here = pc.equal(batch.partitions, p)
            suspect = pc.and_(here, pc.less_equal(batch.offsets, high))
            if not pc.any(suspect).as_py():
                continue
            present = self.present(p, pc.filter(batch.offsets, suspect).to_pylist())
            if not present:
                continue
            mine = pc.and_(here, pc.is_in(batch.offsets, pa.array(sorted(present), pa.int64())))
            held = mine if held is None else pc.or_(held, mine)
        if held is None:
            return batch
        keep = pc.invert(held)
        log.info("skipped %d rows already in %s (a redelivery)", pc.sum(held).as_py(), self.schema.qualified)
        return batch.filter(keep)

    def _insert_table_isolating(self, batch: _ArrowBatch) -> list[tuple[SinkRecord, str]]:
        try:
            self._insert_table(batch)
            return []
        except InsertFailed:
            raise
        except Exception as exc:
            kind = classify(exc)
            if kind is not FailureKind.DATA:
                self.forget_positions()
                raise InsertFailed(kind, exc) from exc
            if batch.table.num_rows == 1:
                return [(batch.records[0], f"refused by {self.schema.qualified}: {short(exc)}")]
        mid = batch.table.num_rows // 2
        return self._insert_table_isolating(batch.slice(0, mid)) + self._insert_table_isolating(
            batch.slice(mid, batch.table.num_rows - mid)
        )

    def _insert_table(self, batch: _ArrowBatch) -> None:
        settings = dict(self.insert_settings)
        settings["insert_deduplication_token"] = col.dedup_token(batch.ids)
        self.client.insert_arrow(
            self.schema.table, batch.table, database=self.schema.database, settings=settings
        )
        if self.track_positions:
            for p in pc.unique(batch.partitions).to_pylist():
                top = pc.max(pc.filter(batch.offsets, pc.equal(batch.partitions, p))).as_py()
                high = self._high.get(p)
                if high is None or top > high:
                    self._high[p] = top

    # -- the row form -------------------------------------------------------------------------------

    def _insert(self, rows: list[list[Any]], records: list[SinkRecord]) -> None:
        settings = dict(self.insert_settings)
        settings["insert_deduplication_token"] = dedup_token(records)
        self.client.insert(
            self.schema.table,
            rows,
            column_names=self.schema.names(),
            database=self.schema.database,
            settings=settings,
        )
        if self.track_positions:
            for r in records:
                p = r.partition if r.partition is not None else -1
                high = self._high.get(p)
                if high is None or r.offset > high:
                    self._high[p] = r.offset


class _ArrowBatch:
    """An Arrow table with its records, partitions (None as -1), offsets and message ids, row-aligned."""

    def __init__(
        self,
        table: pa.Table,
        records: list[SinkRecord],
        partitions: pa.Array,
        offsets: pa.Array,
        ids: pa.Array,
    ) -> None:
        self.table, self.records = table, records
        self.partitions, self.offsets, self.ids = partitions, offsets, ids

    def filter(self, keep: pa.Array) -> _ArrowBatch:
        mask = keep.to_pylist()
        return _ArrowBatch(
            self.table.filter(keep),
            [r for r, k in zip(self.records, mask, strict=True) if k],
            self.partitions.filter(keep),
            self.offsets.filter(keep),
            self.ids.filter(keep),
        )

    def slice(self, start: int, length: int) -> _ArrowBatch:
        return _ArrowBatch(
            self.table.slice(start, length),
            self.records[start : start + length],
            self.partitions.slice(start, length),
            self.offsets.slice(start, length),
            self.ids.slice(start, length),
        )
