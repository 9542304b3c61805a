"""The Debezium-style change event and its routing key.

::

    {"before": {...} | null, "after": {...} | null, "op": "c" | "u" | "d" | "r",
     "source": {"connector": "postgres-cdc", "name": <connector_name>, "db": ..., "schema": ..., "table": ...,
                "lsn": <int>, "txId": <int> | null, "ts_ms": <commit time> | null, "snapshot": <bool>},
     "ts_ms": <when the connector produced the event>}

``before``: for UPDATE and DELETE, the columns the table's REPLICA IDENTITY logs: the primary-key columns
with DEFAULT (the only ones present), every column with FULL, the index columns with USING INDEX; null
when nothing is logged (NOTHING, or pgoutput with DEFAULT on an UPDATE that did not change the key).
Snapshot ("r") and INSERT ("c") events have ``before = null``; DELETE events have ``after = null``.

An unchanged TOASTed column (a large value the UPDATE did not touch, which PostgreSQL does not log) is
present in ``after`` with the string value :data:`UNCHANGED_TOAST` and listed in ``unchanged_toast``
(a top-level field, only present when non-empty): consumers keep their previous value for it.

Routing key: the primary-key value as text for a one-column key, a JSON array of the key values (in key
order) for a composite key, none for a table without primary key (round-robin partition).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from danube_source_postgres_cdc.catalog import TableInfo
from danube_source_postgres_cdc.changes import Column
from danube_source_postgres_cdc.values import ValueConverter

__all__ = ["UNCHANGED_TOAST", "build_event", "routing_key"]

UNCHANGED_TOAST = "__unchanged_toast__"


def row_values(
    converter: ValueConverter, columns: list[Column] | None
) -> tuple[dict[str, Any] | None, list[str]]:
    """(column -> JSON value, names of unchanged TOAST columns)."""
    if columns is None:
        return None, []
    out: dict[str, Any] = {}
    toast: list[str] = []
    for c in columns:
        if c.toast:
            out[c.name] = UNCHANGED_TOAST
            toast.append(c.name)
        else:
            out[c.name] = converter.convert(c.type_oid, c.value)
    return out, toast


def routing_key(table: TableInfo, row: dict[str, Any] | None) -> str | None:
    if not table.primary_key or row is None:
        return None
    values = [row.get(k) for k in table.primary_key]
    if len(values) == 1:
        v = values[0]
        return v if isinstance(v, str) else orjson.dumps(v).decode()
    return orjson.dumps(values).decode()


def build_event(
    *,
    op: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    table: TableInfo,
    db: str,
    connector_name: str,
    lsn: int,
    tx_id: int | None,
    commit_ts_ms: int | None,
    snapshot: bool,
    unchanged_toast: list[str] | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "before": before,
        "after": after,
        "op": op,
        "source": {
            "connector": "postgres-cdc",
            "name": connector_name,
            "db": db,
            "schema": table.schema,
            "table": table.name,
            "lsn": lsn,
            "txId": tx_id,
            "ts_ms": commit_ts_ms,
            "snapshot": snapshot,
        },
        "ts_ms": int(time.time() * 1000),
    }
    if unchanged_toast:
        event["unchanged_toast"] = unchanged_toast
    return event
