"""Catalog look-ups: do the mapped tables exist, what are their columns, keys and column types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from danube_source_postgres_cdc.values import TypeInfo, ValueConverter

__all__ = ["TableInfo", "load_table", "load_types", "split_table_name"]


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A captured table: ``columns`` as (name, type OID) in table order, ``primary_key`` column names."""

    schema: str
    name: str
    columns: tuple[tuple[str, int], ...]
    primary_key: tuple[str, ...]
    replica_identity: str  # d default, f full, i index, n nothing
    #: REPLICA IDENTITY USING INDEX names an index that still exists (dropping it leaves ``i`` behind,
    #: which then logs nothing).
    has_identity_index: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def quoted(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def split_table_name(text: str) -> tuple[str, str]:
    """``public.orders`` / ``"My Schema"."T"`` / ``orders`` -> (schema, table) as stored in the catalog."""
    parts: list[str] = []
    buf = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            end = i + 1
            while True:
                end = text.index('"', end)
                if end + 1 < len(text) and text[end + 1] == '"':
                    end += 2
                    continue
                break
            buf += text[i + 1 : end].replace('""', '"')
            i = end + 1
            continue
        if ch == ".":
            parts.append(buf)
            buf = ""
        else:
            buf += ch.lower()
        i += 1
    parts.append(buf)
    if len(parts) == 1:
        return "public", parts[0]
    return parts[0], parts[1]


_TABLE_SQL = """
SELECT c.oid, c.relreplident::text AS ident,
       array(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
             AND NOT a.attisdropped ORDER BY a.attnum) AS names,
       array(SELECT a.atttypid::int FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
             AND NOT a.attisdropped ORDER BY a.attnum) AS types,
       array(SELECT a.attname::text FROM pg_index i
             JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.n) AS pk,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) AS ident_index
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
"""


async def load_table(conn: Any, schema: str, name: str) -> TableInfo | None:
    """The table's metadata, or None when no such table exists."""
    row = await conn.fetchrow(_TABLE_SQL, schema, name)
    if row is None:
        return None
    return TableInfo(
        schema=schema,
        name=name,
        columns=tuple(zip(row["names"], row["types"], strict=True)),
        primary_key=tuple(row["pk"]),
        replica_identity=row["ident"],
        has_identity_index=row["ident_index"],
    )


_TYPES_SQL = """
WITH RECURSIVE t(oid) AS (
    SELECT unnest($1::oid[])
    UNION
    SELECT x FROM pg_type p JOIN t ON p.oid = t.oid,
           LATERAL (VALUES (p.typelem), (p.typbasetype)) AS v(x)
    WHERE x <> 0
)
SELECT p.oid::int, p.typcategory::text AS category, p.typelem::int AS element,
       p.typbasetype::int AS base, p.typdelim::text AS delimiter
FROM pg_type p JOIN t ON p.oid = t.oid
"""


async def load_types(conn: Any, converter: ValueConverter, oids: set[int]) -> None:
    """Teach ``converter`` the given types and everything they refer to (array elements, domain bases)."""
    missing = {o for o in oids if not converter.knows(o)}
    if not missing:
        return
    found: set[int] = set()
    for row in await conn.fetch(_TYPES_SQL, list(missing)):
        found.add(row["oid"])
        converter.add(
            TypeInfo(row["oid"], row["category"], row["element"], row["base"], row["delimiter"] or ",")
        )
    for oid in missing - found:  # unknown to the catalog: remember it, convert as text
        converter.add(TypeInfo(oid, "", 0, 0))
