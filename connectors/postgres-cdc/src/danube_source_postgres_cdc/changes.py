"""What the decoders produce: committed transactions holding row changes, in commit order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Column", "RowChange", "Transaction"]

Op = Literal["c", "u", "d", "t"]


@dataclass(frozen=True, slots=True)
class Column:
    """A column value as decoded: name, type OID and the raw (text form) value; ``toast`` marks an
    unchanged TOASTed value the plugin did not send."""

    name: str
    type_oid: int
    value: Any
    toast: bool = False


@dataclass(slots=True)
class RowChange:
    """One INSERT (c), UPDATE (u) or DELETE (d) of a row, or a TRUNCATE (t) of the table (no rows).

    ``before`` is what the table's REPLICA IDENTITY logged (key columns, or every column with FULL), or
    None when nothing was logged; ``after`` is the new row (None for deletes).
    """

    op: Op
    schema: str
    table: str
    lsn: int
    before: list[Column] | None
    after: list[Column] | None


@dataclass(slots=True)
class Transaction:
    """A committed transaction: ``end_lsn`` is the position just past its commit record, the point a slot
    may be advanced to once every change in it is acknowledged. ``changes`` holds only captured tables."""

    xid: int | None
    end_lsn: int
    commit_ts_ms: int | None
    changes: list[RowChange] = field(default_factory=list)
    rows: int = 0  # rows the plugin produced for it (sizing the next slot read)
