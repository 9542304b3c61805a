"""Idempotent, de-duplicated batch inserts into one table, isolating rows the table refuses.

Idempotency (invariant 2), two layers:

1. Every insert carries ``insert_deduplication_token`` = a hash of the message ids it holds, so repeating
   the *same* insert (a retry after a timeout whose insert did land, a replay cut the same way) is dropped
   by the server. This needs a Replicated*MergeTree table, or a MergeTree with the table setting
   ``non_replicated_deduplication_window`` > 0 (the sink warns at start-up when it is missing).
2. When the table has ``_danube_partition`` and ``_danube_offset`` columns (``include_metadata``), the writer
   knows, per partition, the highest offset the table holds (read when the partition first appears in a
   batch, one query for all new partitions of that batch, then kept up to date). Rows at or
   below it are looked up by (partition, offset) before inserting and the ones already present are
   skipped. That makes a redelivery after a crash exact however the broker re-batches it, and whatever
   part of an earlier insert landed. Rows above it cannot be in the table (a single writer per partition).

A data error (a value the column cannot take) on a multi-row insert is narrowed down by bisection with the
same deterministic tokens, so only the bad rows are reported and every other row is inserted.
Two insert forms: :meth:`TableWriter.write_table` inserts one Arrow table (``insert_arrow``: ClickHouse
reads the columns as they are); :meth:`write` inserts Python rows (``client.insert``) for tables with a
column type that has no Arrow form. Both are a batch of one shape (:class:`_Batch`: its records, their
partitions and offsets as arrays, slicing, filtering, its insert), so replay filtering, positions and the
bisection are written once, on the arrays. The token of a batch is the same in both forms (a hash of its
message ids), so a replay de-duplicates across them.
All methods block (clickhouse-connect's sync client); the connector runs them in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Self, TypeVar

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
from danube_connect_core import SinkRecord
from danube_connect_core import columns as col

from danube_sink_clickhouse.failures import FailureKind, classify, short
from danube_sink_clickhouse.table_schema import TableSchema

__all__ = ["InsertFailed", "TableWriter"]

log = logging.getLogger("danube_sink_clickhouse.writer")

Rows = list[list[Any]]


class InsertFailed(Exception):
    """An insert failed for a reason other than bad data (``kind`` is RETRYABLE or FATAL)."""

    def __init__(self, kind: FailureKind, cause: BaseException) -> None:
        super().__init__(short(cause))
        self.kind = kind


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

    def _where(self, partitions: Sequence[int]) -> str:
        listed = ", ".join(str(int(p)) for p in partitions)
        clause = f"_danube_partition IN ({listed})"
        if self._topic_filter:
            clause += " AND _danube_topic = {topic:String}"
        return clause

    def high_water(self, partition: int) -> int | None:
        """The highest offset of ``partition`` in the table (None: no row), read once then kept."""
        return self.high_waters([partition])[partition]

    def high_waters(self, partitions: Sequence[int]) -> dict[int, int | None]:
        """:meth:`high_water` of each of ``partitions``: one query for those not read yet."""
        unknown = [p for p in partitions if p not in self._high]
        if unknown:
            result = self.client.query(
                f"SELECT _danube_partition, max(_danube_offset) FROM {self.schema.qualified} "
                f"WHERE {self._where(unknown)} GROUP BY _danube_partition",
                parameters={"topic": self.topic},
            )
            found = {int(p): int(top) for p, top in result.result_rows}
            for p in unknown:
                self._high[p] = found.get(p)
        return {p: self._high[p] for p in partitions}

    def present(self, partition: int, offsets: Sequence[int]) -> set[int]:
        """Which of ``offsets`` of ``partition`` the table already holds."""
        result = self.client.query(
            f"SELECT DISTINCT _danube_offset FROM {self.schema.qualified} WHERE {self._where([partition])} "
            f"AND _danube_offset BETWEEN {int(min(offsets))} AND {int(max(offsets))}",
            parameters={"topic": self.topic},
        )
        wanted = set(offsets)
        return {int(row[0]) for row in result.result_rows if int(row[0]) in wanted}

    def forget_positions(self) -> None:
        self._high.clear()

    def _fresh(self, batch: _B) -> _B:
        """The batch without the rows the table already holds (replays); see the module docstring."""
        uniq = pc.unique(batch.partitions)
        highs = self.high_waters(uniq.to_pylist())
        if all(h is None for h in highs.values()):
            return batch
        row_high = pc.take(pa.array(list(highs.values()), pa.int64()), pc.index_in(batch.partitions, uniq))
        suspect = pc.fill_null(pc.less_equal(batch.offsets, row_high), False)
        if not pc.any(suspect).as_py():
            return batch
        held = None
        for p in pc.unique(pc.filter(batch.partitions, suspect)).to_pylist():
            mine = pc.and_(suspect, pc.equal(batch.partitions, p))
            present = self.present(p, pc.filter(batch.offsets, mine).to_pylist())
            if not present:
                continue
            found = pc.and_(mine, pc.is_in(batch.offsets, pa.array(sorted(present), pa.int64())))
            held = found if held is None else pc.or_(held, found)
        if held is None:
            return batch
        log.info("skipped %d rows already in %s (a redelivery)", pc.sum(held).as_py(), self.schema.qualified)
        return batch.filter(pc.invert(held))

    def _advance(self, batch: _Batch) -> None:
        """Raise the kept high waters to the highest offsets of ``batch`` (just inserted)."""
        for p in pc.unique(batch.partitions).to_pylist():
            top = pc.max(pc.filter(batch.offsets, pc.equal(batch.partitions, p))).as_py()
            high = self._high.get(p)
            if high is None or top > high:
                self._high[p] = top

    # -- inserting ----------------------------------------------------------------------------------

    def write(self, rows: Rows, records: list[SinkRecord]) -> list[tuple[SinkRecord, str]]:
        """Insert the rows not yet in the table; returns the records the table refused, with reasons.

        Raises InsertFailed (RETRYABLE or FATAL) when the table could not be written; what was inserted
        before that is found again by the next attempt (tokens and positions), never duplicated.
        """
        partitions, offsets = col.record_positions(records)
        return self._write(_RowBatch(rows, records, partitions.fill_null(-1), offsets))

    def write_table(
        self, table: pa.Table, records: list[SinkRecord], fields: col.RecordFields
    ) -> list[tuple[SinkRecord, str]]:
        """:meth:`write` for an Arrow table: ``records`` and ``fields`` are aligned with its rows.

        Same failure semantics as :meth:`write` (refused records returned with reasons; InsertFailed).
        """
        return self._write(
            _ArrowBatch(table, records, fields.partitions.fill_null(-1), fields.offsets, fields.message_ids)
        )

    def _write(self, batch: _Batch) -> list[tuple[SinkRecord, str]]:
        try:
            if self.track_positions:
                batch = self._fresh(batch)
        except Exception as exc:
            self.forget_positions()
            kind = FailureKind.FATAL if classify(exc) is FailureKind.FATAL else FailureKind.RETRYABLE
            raise InsertFailed(kind, exc) from exc
        if not len(batch):
            return []
        return self._insert_isolating(batch)

    def _insert_isolating(self, batch: _Batch) -> list[tuple[SinkRecord, str]]:
        """Insert ``batch``; when the table refuses its data, insert each half the same way, down to the
        single rows it refuses (returned with the server's reason). Other failures: InsertFailed."""
        try:
            batch.insert(self.client, self.schema, dict(self.insert_settings))
        except Exception as exc:
            kind = classify(exc)
            if kind is not FailureKind.DATA:
                self.forget_positions()
                raise InsertFailed(kind, exc) from exc
            if len(batch) == 1:
                return [(batch.records[0], f"refused by {self.schema.qualified}: {short(exc)}")]
        else:
            if self.track_positions:
                self._advance(batch)
            return []
        mid = len(batch) // 2
        return self._insert_isolating(batch.slice(0, mid)) + self._insert_isolating(
            batch.slice(mid, len(batch))
        )


class _Batch(Protocol):
    """One insert's rows in either form: ``records``, ``partitions`` (None as -1) and ``offsets`` aligned
    with the rows; ``insert`` adds the batch's de-duplication token to ``settings`` and inserts it."""

    records: list[SinkRecord]
    partitions: pa.Array
    offsets: pa.Array

    def __len__(self) -> int: ...

    def slice(self, start: int, stop: int) -> Self: ...

    def filter(self, keep: pa.Array) -> Self: ...

    def insert(self, client: Any, schema: TableSchema, settings: dict[str, Any]) -> None: ...


_B = TypeVar("_B", bound=_Batch)


class _RowBatch:
    """Python rows for ``client.insert`` (tables with a column type that has no Arrow form)."""

    def __init__(
        self, rows: Rows, records: list[SinkRecord], partitions: pa.Array, offsets: pa.Array
    ) -> None:
        self.rows, self.records = rows, records
        self.partitions, self.offsets = partitions, offsets

    def __len__(self) -> int:
        return len(self.rows)

    def slice(self, start: int, stop: int) -> _RowBatch:
        return _RowBatch(
            self.rows[start:stop],
            self.records[start:stop],
            self.partitions.slice(start, stop - start),
            self.offsets.slice(start, stop - start),
        )

    def filter(self, keep: pa.Array) -> _RowBatch:
        mask = keep.to_pylist()
        return _RowBatch(
            [row for row, k in zip(self.rows, mask, strict=True) if k],
            [r for r, k in zip(self.records, mask, strict=True) if k],
            self.partitions.filter(keep),
            self.offsets.filter(keep),
        )

    def insert(self, client: Any, schema: TableSchema, settings: dict[str, Any]) -> None:
        ids = pa.array([r.message_id for r in self.records], pa.string())
        settings["insert_deduplication_token"] = col.dedup_token(ids)
        client.insert(
            schema.table, self.rows, column_names=schema.names(), database=schema.database, settings=settings
        )


class _ArrowBatch:
    """An Arrow table for ``client.insert_arrow``, with its message ids (for the token)."""

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

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def slice(self, start: int, stop: int) -> _ArrowBatch:
        length = stop - start
        return _ArrowBatch(
            self.table.slice(start, length),
            self.records[start:stop],
            self.partitions.slice(start, length),
            self.offsets.slice(start, length),
            self.ids.slice(start, length),
        )

    def filter(self, keep: pa.Array) -> _ArrowBatch:
        mask = keep.to_pylist()
        return _ArrowBatch(
            self.table.filter(keep),
            [r for r, k in zip(self.records, mask, strict=True) if k],
            self.partitions.filter(keep),
            self.offsets.filter(keep),
            self.ids.filter(keep),
        )

    def insert(self, client: Any, schema: TableSchema, settings: dict[str, Any]) -> None:
        settings["insert_deduplication_token"] = col.dedup_token(self.ids)
        client.insert_arrow(schema.table, self.table, database=schema.database, settings=settings)
