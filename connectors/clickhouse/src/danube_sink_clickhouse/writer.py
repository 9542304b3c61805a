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
All methods block (clickhouse-connect's sync client); the connector runs them in a worker thread.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from danube_connect_core import SinkRecord

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
