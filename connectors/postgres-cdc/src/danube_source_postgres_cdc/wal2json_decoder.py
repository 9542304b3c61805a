"""Decoding wal2json format-version 2 rows (one JSON object per row: B, I, U, D, T, M, C actions).

Numbers are parsed as their literal text (``numeric`` must not go through a float); the value converter
turns them into JSON numbers or strings by column type. wal2json leaves an unchanged TOASTed column out of
an UPDATE's ``columns``: such a column (known from the catalog) is reported with ``toast=True``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from danube_source_postgres_cdc.catalog import TableInfo
from danube_source_postgres_cdc.changes import Column, RowChange, Transaction
from danube_source_postgres_cdc.lsn import parse_lsn

__all__ = ["NUMBERS_AS_STRINGS", "Wal2JsonDecoder", "wal2json_options"]


def _escape(name: str) -> str:
    out = []
    for ch in name:
        if ch in "\\,.* ":
            out.append("\\")
        out.append(ch)
    return "".join(out)


#: wal2json >= 2.6: numbers as strings. Older versions write NaN, Infinity and -Infinity of real, double
#: precision and numeric columns as JSON null, which cannot be told apart from SQL NULL.
NUMBERS_AS_STRINGS = ["numeric-data-types-as-string", "1"]


def wal2json_options(tables: Iterable[TableInfo], *, numbers_as_strings: bool = False) -> list[str]:
    """The plugin options (name, value, name, value...) for ``pg_logical_slot_peek_changes``."""
    add_tables = ",".join(f"{_escape(t.schema)}.{_escape(t.name)}" for t in tables)
    extra = NUMBERS_AS_STRINGS if numbers_as_strings else []
    return [
        *extra,
        "format-version", "2",
        "include-xids", "1",
        "include-timestamp", "1",
        "include-lsn", "1",
        "include-pk", "1",
        "include-type-oids", "1",
        "include-typmod", "0",
        "include-transaction", "1",
        "add-tables", add_tables,
    ]  # fmt: skip


def _commit_ms(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return None


class Wal2JsonDecoder:
    """Groups peeked rows into committed transactions of the captured tables."""

    def __init__(self, tables: Mapping[tuple[str, str], TableInfo]) -> None:
        self.tables = tables

    def decode(self, rows: Iterable[tuple[str, int | None, str]]) -> list[Transaction]:
        """``rows`` are (lsn, xid, data) as returned by the slot; returns whole transactions only."""
        out: list[Transaction] = []
        current: Transaction | None = None
        for lsn_text, _xid, data in rows:
            msg: dict[str, Any] = json.loads(data, parse_float=str, parse_int=str)
            action = msg.get("action")
            if action == "B":
                current = Transaction(
                    xid=int(msg["xid"]) if msg.get("xid") is not None else None,
                    end_lsn=0,
                    commit_ts_ms=_commit_ms(msg.get("timestamp")),
                    rows=1,
                )
                continue
            if current is None:
                continue  # a non-transactional message outside any transaction: nothing to capture
            current.rows += 1
            if action == "C":
                current.end_lsn = parse_lsn(lsn_text)
                out.append(current)
                current = None
            elif action in ("I", "U", "D"):
                change = self._change(action, msg, parse_lsn(lsn_text))
                if change is not None:
                    current.changes.append(change)
            elif action == "T":
                key = (msg.get("schema", ""), msg.get("table", ""))
                if key in self.tables:
                    current.changes.append(RowChange("t", key[0], key[1], parse_lsn(lsn_text), None, None))
        return out

    def _change(self, action: str, msg: dict[str, Any], lsn: int) -> RowChange | None:
        key = (msg.get("schema", ""), msg.get("table", ""))
        info = self.tables.get(key)
        if info is None:
            return None
        after = _columns(msg.get("columns")) if action != "D" else None
        before = _columns(msg.get("identity")) if action != "I" else None
        if after is not None and action == "U":
            present = {c.name for c in after}
            for name, oid in info.columns:
                if name not in present:
                    after.append(Column(name, oid, None, toast=True))
        op = {"I": "c", "U": "u", "D": "d"}[action]
        return RowChange(op, key[0], key[1], lsn, before, after)  # type: ignore[arg-type]


def _columns(items: list[dict[str, Any]] | None) -> list[Column] | None:
    if items is None:
        return None
    return [Column(c["name"], int(c.get("typeoid") or 0), c.get("value")) for c in items]
