"""Batched, idempotent writes of rows into one table, isolating the rows SurrealDB refuses.

One statement per batch (invariant 2: the record ids are deterministic, so a retried or redelivered batch
rewrites the same records):

- ``insert``: ``INSERT IGNORE INTO <table> $rows`` - a record that already exists is left as it is
  (a redelivery changes nothing). A plain ``INSERT`` would fail the whole statement on one existing id.
- ``upsert``: ``FOR $r IN $rows { UPSERT $r.id CONTENT $r }`` - the latest version replaces the record.

A statement is atomic: when SurrealDB refuses it, nothing of it was written. The writer then sends the
same statement with no rows; if that fails too, the cause does not depend on the data and the failure is a
ConnectionProblem (retried, never dead-lettered: invariant 5). Otherwise it splits the batch in halves
until it has found the single rows that are refused; every other row is written (invariant 5). Cost: about
``2 * k * log2(n)`` extra statements for ``k`` refused rows in a batch of ``n``, only on that path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from danube_sink_surrealdb.database import SurrealDatabase
from danube_sink_surrealdb.failures import ConnectionProblem, StatementRejected

__all__ = ["TableWriter", "write_statement"]

T = TypeVar("T")


def write_statement(table: str, mode: str) -> str:
    """The SurrealQL statement writing ``$rows`` into ``table`` (a validated name, backtick-quoted)."""
    if mode == "upsert":
        return "FOR $r IN $rows { UPSERT $r.id CONTENT $r RETURN NONE; }"
    return f"INSERT IGNORE INTO `{table}` $rows RETURN NONE"


class TableWriter(Generic[T]):
    """Writes ``(tag, row)`` pairs into one table; returns the tags of the rows that were refused."""

    def __init__(self, db: SurrealDatabase, table: str, mode: str) -> None:
        self.db = db
        self.table = table
        self.statement = write_statement(table, mode)
        self.statements = 0  # statements sent (tests and benchmarks look at it)

    async def write(self, pairs: Sequence[tuple[T, dict[str, Any]]]) -> list[tuple[T, str]]:
        """Write every row that SurrealDB accepts; returns ``(tag, reason)`` of those it refuses.

        Raises ConnectionProblem when the database is unreachable or refuses the table as a whole; then
        some rows may have been written already, which is safe to repeat (the writes are idempotent).
        """
        if not pairs:
            return []
        try:
            await self._send([row for _, row in pairs])
            return []
        except StatementRejected as exc:
            first_reason = str(exc)
        await self._check_table(first_reason)
        return await self._isolate(pairs, first_reason)

    async def _isolate(self, pairs: Sequence[tuple[T, dict[str, Any]]], reason: str) -> list[tuple[T, str]]:
        if len(pairs) == 1:
            return [(pairs[0][0], reason)]
        mid = len(pairs) // 2
        refused: list[tuple[T, str]] = []
        for half in (pairs[:mid], pairs[mid:]):
            try:
                await self._send([row for _, row in half])
            except StatementRejected as exc:
                refused += await self._isolate(half, str(exc))
        return refused

    async def _check_table(self, reason: str) -> None:
        try:
            await self._send([])
        except StatementRejected as exc:
            raise ConnectionProblem(
                f"table {self.table} refuses writes: {exc} (batch failed with: {reason})"
            ) from exc

    async def _send(self, rows: list[dict[str, Any]]) -> None:
        self.statements += 1
        await self.db.query(self.statement, {"rows": rows})
