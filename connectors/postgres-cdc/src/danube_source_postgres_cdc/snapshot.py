"""The initial (or every-start) snapshot of the mapped tables, consistent with the slot's stream.

Consistency argument
--------------------
The slot exists first, at position P (its ``confirmed_flush_lsn``). Only then does the reader open a
REPEATABLE READ transaction and take its snapshot S (``pg_current_snapshot()``, the statement that fixes
the transaction snapshot). Every transaction T touching a mapped table falls in exactly one case:

* T committed before S was taken: S sees T's effects, so the snapshot rows ("r") contain them. If T's
  commit lies before P the slot will never return it; if it lies after P the slot will, and the stream
  would deliver T a second time. The stream therefore skips every transaction that is *visible in S*
  (xid below S.xmin, or below S.xmax and not in S's in-progress list) - exactly the ones whose effects
  the snapshot rows already carry.
* T was still running or had not started when S was taken: S does not see it, and its commit record
  lies after the point S was taken, hence after P (P was fixed before S), so the slot returns it and the
  stream delivers it after the snapshot rows.

So every change is in the snapshot rows or in the stream, never in both and never in neither. The check
uses the top-level transaction id wal2json/pgoutput report (32 bits, widened against S.xmax). S is stored
in the state table with the completion flag, so the skipping still applies after a restart.

Failure semantics: a snapshot interrupted before all its rows were acknowledged is not marked complete;
the next start takes a new snapshot (rows already delivered are delivered again as "r").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from danube_source_postgres_cdc.catalog import TableInfo, quote_ident
from danube_source_postgres_cdc.lsn import parse_lsn

__all__ = ["SnapshotFilter", "SnapshotReader"]

_WRAP = 1 << 32


@dataclass(frozen=True, slots=True)
class SnapshotFilter:
    """Which transactions a ``pg_snapshot`` (``xmin:xmax:xip,...``) sees."""

    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> SnapshotFilter:
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def _widen(self, xid: int) -> int:
        diff = (xid - self.xmax) % _WRAP
        return self.xmax + diff if diff < _WRAP // 2 else self.xmax - (_WRAP - diff)

    def visible(self, xid: int | None) -> bool:
        """True when the snapshot already contains this committed transaction's effects."""
        if xid is None:
            return False
        full = self._widen(xid)
        if full < self.xmin:
            return True
        return full < self.xmax and full not in self.xip


class SnapshotReader:
    """Reads every mapped table in one REPEATABLE READ READ ONLY transaction, in chunks.

    ``start`` takes the snapshot and returns its ``pg_snapshot`` text; ``next_chunk`` returns up to n
    (table, row) pairs, rows as (column name, type OID, text value) lists, and an empty list at the end.
    """

    def __init__(self, conn: Any, tables: Sequence[TableInfo]) -> None:
        self._conn = conn
        self._tables = list(tables)
        self._index = 0
        self._cursor: Any = None
        self.snapshot_text = ""
        self.wal_lsn = 0
        self.started_ms = 0

    async def start(self) -> str:
        await self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = await self._conn.fetchrow(
            "SELECT pg_current_snapshot()::text AS s, pg_current_wal_lsn()::text AS l"
        )
        self.snapshot_text = row["s"]
        self.wal_lsn = parse_lsn(row["l"])
        self.started_ms = int(time.time() * 1000)
        return str(self.snapshot_text)

    async def next_chunk(self, n: int) -> list[tuple[TableInfo, list[tuple[str, int, Any]]]]:
        out: list[tuple[TableInfo, list[tuple[str, int, Any]]]] = []
        while len(out) < n and self._index < len(self._tables):
            table = self._tables[self._index]
            if self._cursor is None:
                cols = ", ".join(f"{quote_ident(name)}::text" for name, _ in table.columns)
                self._cursor = await self._conn.cursor(f"SELECT {cols} FROM {table.quoted}")
            want = n - len(out)
            rows = await self._cursor.fetch(want)
            for row in rows:
                out.append((table, [(name, oid, row[i]) for i, (name, oid) in enumerate(table.columns)]))
            if len(rows) < want:  # this table is exhausted
                self._cursor = None
                self._index += 1
        return out

    async def finish(self) -> None:
        self._cursor = None
        await self._conn.execute("COMMIT")
