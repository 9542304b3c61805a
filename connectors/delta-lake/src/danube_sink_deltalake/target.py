"""One Delta table written by one mapping: creation, schema check, idempotent appends.

Idempotency (invariant 2). Danube offsets are per partition of a topic and a batch may hold several
partitions, so the table records one Delta *application transaction* per (connector, topic, partition):
``app_id = "danube-connect/<connector>/<topic>/<partition>"`` with ``version`` = the highest offset of that
partition ever committed to this table. Every append is ONE commit carrying the rows of the batch and the
new versions of all partitions it touches, so data and positions change atomically. Before appending,
rows whose offset is <= the recorded version of their partition are dropped: they were committed by an
earlier attempt whose acknowledgement was lost (a crash between commit and ack, a retry after a commit
that did succeed). This is exact as long as each partition's messages are written in offset order, which
holds for one consumer per partition (one sink instance, or Exclusive/Failover subscriptions): the
runtime writes batches one after another and a redelivery only repeats offsets already received.

All methods are blocking (delta-rs); the connector runs them in a worker thread.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from operator import itemgetter

import pyarrow as pa  # type: ignore[import-untyped]
from deltalake import CommitProperties, DeltaTable, Schema, Transaction, write_deltalake

__all__ = ["DeltaTarget", "SchemaConflict"]

log = logging.getLogger("danube_sink_deltalake.target")

_OFFSET = itemgetter(1)

#: How delta-rs (Rust std::io::Error) reports an OS error inside its messages.
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


class SchemaConflict(Exception):
    """The existing table cannot hold the mapping's columns (a configuration problem, not data)."""


class DeltaTarget:
    def __init__(
        self,
        uri: str,
        schema: pa.Schema,
        *,
        partition_by: list[str],
        storage_options: Mapping[str, str],
        app_prefix: str,
    ) -> None:
        self.uri = uri
        self.schema = schema
        self.partition_by = partition_by
        self.storage_options = dict(storage_options)
        self.app_prefix = app_prefix
        self.table: DeltaTable | None = None
        self._versions: dict[int | None, int | None] = {}

    def app_id(self, partition: int | None) -> str:
        return f"{self.app_prefix}/{'none' if partition is None else partition}"

    # -- opening ------------------------------------------------------------------------------------

    def open(self) -> None:
        """Open the table, creating it when missing; raise SchemaConflict when its schema does not fit."""
        opts = self.storage_options or None
        if not DeltaTable.is_deltatable(self.uri, storage_options=opts):
            log.info("creating Delta table %s", self.uri)
            DeltaTable.create(
                self.uri,
                self.schema,
                mode="ignore",
                partition_by=self.partition_by or None,
                storage_options=opts,
            )
        self.table = DeltaTable(self.uri, storage_options=opts)
        self._check_schema(self.table)
        self._versions.clear()

    def _check_schema(self, table: DeltaTable) -> None:
        ours = {f.name: f for f in Schema.from_arrow(self.schema).fields}
        theirs = {f.name: f for f in table.schema().fields}
        problems = []
        for name, f in ours.items():
            t = theirs.get(name)
            if t is None:
                problems.append(f"column {name} is missing from the table")
            elif str(t.type) != str(f.type):
                problems.append(f"column {name} is {t.type} in the table, {f.type} in the mapping")
            elif f.nullable and not t.nullable:
                problems.append(f"column {name} is not nullable in the table")
        extra = [n for n, t in theirs.items() if n not in ours and not t.nullable]
        problems += [f"non-nullable table column {n} is not mapped" for n in extra]
        parts = list(table.metadata().partition_columns)
        if parts != list(self.partition_by):
            problems.append(f"table is partitioned by {parts}, the mapping says {self.partition_by}")
        if problems:
            raise SchemaConflict(f"{self.uri}: " + "; ".join(problems))

    def refresh(self) -> None:
        """Forget cached positions and load the newest table state (after a failure or another writer)."""
        self._versions.clear()
        if self.table is not None:
            self.table.update_incremental()

    # -- positions ----------------------------------------------------------------------------------

    def recorded(self, partition: int | None) -> int | None:
        """The highest offset of ``partition`` already committed to this table (None: none yet)."""
        if partition not in self._versions:
            assert self.table is not None
            self._versions[partition] = self.table.transaction_version(self.app_id(partition))
        return self._versions[partition]

    # -- writing ------------------------------------------------------------------------------------

    def append(self, rows: pa.Table, positions: Mapping[int | None, int]) -> int:
        """Append ``rows`` and advance the positions in ONE commit; returns the new table version.

        If it raises, nothing is committed (Delta commits are atomic) and the cached positions are
        dropped so the next attempt re-reads them from the table.
        """
        assert self.table is not None
        txns = [Transaction(self.app_id(p), int(v)) for p, v in positions.items()]
        try:
            write_deltalake(
                self.table,
                rows,
                mode="append",
                commit_properties=CommitProperties(app_transactions=txns),
            )  # updates self.table to the new version in place
        except Exception:
            self._versions.clear()
            raise
        for p, v in positions.items():
            self._versions[p] = int(v)
        return int(self.table.version())

    def append_new(
        self, rows: pa.Table, positions: Sequence[tuple[int | None, int]]
    ) -> tuple[int, int | None]:
        """Append the rows not yet in the table and advance the positions, in ONE commit.

        ``positions`` are the rows' (partition, offset), aligned with ``rows``. Rows at or below their
        partition's recorded version are dropped first (a redelivery; see the module docstring). Each
        partition's lowest and highest offset come from the pairs sorted by offset (C, no Python code per
        row); only a batch that holds a redelivered row is filtered row by row. Returns (rows skipped, new
        table version or None when nothing was left to append). Raises like :meth:`append` (nothing
        committed).
        """
        by_offset = sorted(positions, key=_OFFSET)
        highest = dict(by_offset)  # the last pair of a partition wins: its highest offset
        lowest = dict(reversed(by_offset))
        recorded = {p: self.recorded(p) for p in highest}
        skipped = 0
        if any(v is not None and lowest[p] <= v for p, v in recorded.items()):
            keep = [(v := recorded[p]) is None or o > v for p, o in positions]
            skipped = keep.count(False)
            rows = rows.filter(pa.array(keep, pa.bool_()))
        if rows.num_rows == 0:
            return skipped, None
        new = {p: o for p, o in highest.items() if (v := recorded[p]) is None or o > v}
        return skipped, self.append(rows, new)

    def count(self) -> int:
        assert self.table is not None
        self.table.update_incremental()
        return int(self.table.count())

    @staticmethod
    def describe_error(exc: BaseException) -> str:
        """One line; an OS error inside delta-rs's message is named first (``No space left on device:
        DeltaError: ... (os error 28)``), so a full or read-only disk reads as such."""
        text = str(exc).strip().splitlines()
        described = f"{type(exc).__name__}: {text[0] if text else ''}"
        os_error = _OS_ERROR.search(str(exc))
        if os_error is not None:
            described = f"{os.strerror(int(os_error.group(1)))}: {described}"
        return described[:500]
