"""Decoding pgoutput (logical replication protocol version 1) messages read with
``pg_logical_slot_peek_binary_changes``.

Each peek starts a new decoding session, so the plugin re-sends a Relation message before the first change
of every table; the decoder keeps them per session. Values arrive in text form ('t'); an unchanged TOASTed
value arrives as 'u' and is reported with ``toast=True``. PostgreSQL 15 does not send empty transactions
(those touching no published table), which is why the connector's heartbeat uses a logical message.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from danube_source_postgres_cdc.catalog import TableInfo
from danube_source_postgres_cdc.changes import Column, RowChange, Transaction
from danube_source_postgres_cdc.lsn import parse_lsn

__all__ = ["PgOutputDecoder", "pgoutput_options"]

_PG_EPOCH_MS = 946_684_800_000  # 2000-01-01 in Unix milliseconds


def pgoutput_options(publication: str) -> list[str]:
    return ["proto_version", "1", "publication_names", publication, "messages", "true"]


@dataclass(frozen=True, slots=True)
class _Relation:
    schema: str
    table: str
    columns: tuple[tuple[str, int, bool], ...]  # name, type oid, part of the replica identity key


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> str:
        b = self.data[self.pos : self.pos + 1].decode("ascii")
        self.pos += 1
        return b

    def int8(self) -> int:
        v: int = self.data[self.pos]
        self.pos += 1
        return v

    def int16(self) -> int:
        (v,) = struct.unpack_from(">h", self.data, self.pos)
        self.pos += 2
        return int(v)

    def int32(self) -> int:
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(v)

    def uint32(self) -> int:
        (v,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return int(v)

    def int64(self) -> int:
        (v,) = struct.unpack_from(">q", self.data, self.pos)
        self.pos += 8
        return int(v)

    def string(self) -> str:
        end = self.data.index(b"\x00", self.pos)
        s = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return s

    def tuple_data(self) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for _ in range(self.int16()):
            kind = self.byte()
            if kind in ("t", "b"):
                length = self.int32()
                raw = self.data[self.pos : self.pos + length]
                self.pos += length
                out.append((kind, raw.decode("utf-8") if kind == "t" else raw.hex()))
            else:
                out.append((kind, None))  # 'n' null, 'u' unchanged TOAST
        return out


class PgOutputDecoder:
    """Groups pgoutput messages into committed transactions of the captured tables."""

    def __init__(self, tables: Mapping[tuple[str, str], TableInfo]) -> None:
        self.tables = tables

    def decode(self, rows: Iterable[tuple[str, int | None, bytes]]) -> list[Transaction]:
        relations: dict[int, _Relation] = {}
        out: list[Transaction] = []
        current: Transaction | None = None
        for _lsn_text, _xid, data in rows:
            r = _Reader(bytes(data))
            kind = r.byte()
            if current is not None:
                current.rows += 1
            if kind == "B":
                r.int64()  # final (commit) lsn
                ts = r.int64()
                xid = r.uint32()
                current = Transaction(xid, 0, _PG_EPOCH_MS + ts // 1000, rows=1)
            elif kind == "C":
                r.int8()
                r.int64()  # commit lsn
                end = r.int64()
                if current is not None:
                    current.end_lsn = end
                    out.append(current)
                current = None
            elif kind == "R":
                relid = r.uint32()
                schema, table = r.string(), r.string()
                r.int8()  # replica identity setting
                cols = []
                for _ in range(r.int16()):
                    flags = r.int8()
                    name = r.string()
                    oid = r.uint32()
                    r.int32()  # typmod
                    cols.append((name, oid, bool(flags & 1)))
                relations[relid] = _Relation(schema, table, tuple(cols))
            elif kind in ("I", "U", "D") and current is not None:
                change = self._change(kind, r, relations, parse_lsn(_lsn_text))
                if change is not None:
                    current.changes.append(change)
            elif kind == "T" and current is not None:
                count = r.int32()
                r.int8()  # options: CASCADE, RESTART IDENTITY
                for _ in range(count):
                    rel = relations.get(r.uint32())
                    if rel is not None and (rel.schema, rel.table) in self.tables:
                        lsn = parse_lsn(_lsn_text)
                        current.changes.append(RowChange("t", rel.schema, rel.table, lsn, None, None))
        return out

    def _change(self, kind: str, r: _Reader, relations: dict[int, _Relation], lsn: int) -> RowChange | None:
        rel = relations.get(r.uint32())
        if rel is None or (rel.schema, rel.table) not in self.tables:
            return None
        before: list[Column] | None = None
        after: list[Column] | None = None
        marker = r.byte()
        if marker in ("K", "O"):
            old = r.tuple_data()
            before = _columns(rel, old, keys_only=marker == "K")
            if kind == "U":
                marker = r.byte()
        if marker == "N":
            after = _columns(rel, r.tuple_data(), keys_only=False)
        op = {"I": "c", "U": "u", "D": "d"}[kind]
        return RowChange(op, rel.schema, rel.table, lsn, before, after)  # type: ignore[arg-type]


def _columns(rel: _Relation, values: list[tuple[str, str | None]], *, keys_only: bool) -> list[Column]:
    out = []
    for (name, oid, is_key), (kind, value) in zip(rel.columns, values, strict=False):
        if keys_only and not is_key:
            continue
        out.append(Column(name, oid, value, toast=kind == "u"))
    return out
