"""The change events (our default envelope, or Debezium's with ``envelope = "debezium"``) and their
routing key.

Default envelope:

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

Debezium envelope (:func:`build_debezium_event`): the value of a Debezium PostgreSQL connector's change
event with the JSON converter and ``schemas.enable=false`` — ``before``, ``after``, ``source`` (``version``,
``connector: "postgresql"``, ``name``, ``ts_ms``/``ts_us``/``ts_ns``, ``snapshot`` as ``"true"``,
``"last"`` or ``"false"``, ``db``, ``sequence``, ``schema``, ``table``, ``txId``, ``lsn``, ``xmin``),
``transaction`` (``id`` = ``"<txId>:<lsn>"``, ``total_order``, ``data_collection_order``; null for snapshot
rows), ``op`` (``c``, ``u``, ``d``, ``r``, ``t``) and ``ts_ms``/``ts_us``/``ts_ns``. An unchanged TOAST value
is :data:`DEBEZIUM_UNAVAILABLE`.

Routing key: the primary-key value as text for a one-column key, a JSON array of the key values (in key
order) for a composite key, none for a table without primary key (round-robin partition).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from danube_source_postgres_cdc.catalog import TableInfo
from danube_source_postgres_cdc.changes import Column
from danube_source_postgres_cdc.values import ValueConverter

__all__ = [
    "DEBEZIUM_UNAVAILABLE",
    "UNCHANGED_TOAST",
    "DebeziumPosition",
    "build_debezium_event",
    "build_event",
    "routing_key",
    "row_values",
]

UNCHANGED_TOAST = "__unchanged_toast__"
#: Debezium's placeholder for a value the WAL does not hold (``unavailable.value.placeholder``).
DEBEZIUM_UNAVAILABLE = "__debezium_unavailable_value"


def row_values(
    converter: ValueConverter, columns: list[Column] | None, *, toast_placeholder: str = UNCHANGED_TOAST
) -> tuple[dict[str, Any] | None, list[str]]:
    """(column -> JSON value, names of unchanged TOAST columns)."""
    if columns is None:
        return None, []
    out: dict[str, Any] = {}
    toast: list[str] = []
    for c in columns:
        if c.toast:
            out[c.name] = toast_placeholder
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


@dataclass(frozen=True, slots=True)
class DebeziumPosition:
    """Where a change sits: its transaction (None for snapshot rows) and its order in it."""

    tx_id: int | None
    commit_lsn: int | None  # end of the transaction's commit record
    previous_lsn: int  # end of the transaction before it (Debezium's ``sequence[0]``)
    total_order: int  # 1-based, among the transaction's events
    data_collection_order: int  # 1-based, among the transaction's events of this table


def build_debezium_event(
    *,
    op: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    table: TableInfo,
    db: str,
    connector_name: str,
    version: str,
    lsn: int,
    commit_ts_ms: int | None,
    snapshot: str,
    position: DebeziumPosition | None,
) -> dict[str, Any]:
    """A Debezium PostgreSQL change event value (``snapshot``: ``"true"``, ``"last"`` or ``"false"``)."""
    now_ns = time.time_ns()
    commit_ms = commit_ts_ms if commit_ts_ms is not None else now_ns // 1_000_000
    transaction: dict[str, Any] | None = None
    sequence: str | None = None
    tx_id: int | None = None
    if position is not None:
        tx_id = position.tx_id
        sequence = orjson.dumps([str(position.previous_lsn), str(lsn)]).decode()
        transaction = {
            "id": f"{position.tx_id}:{position.commit_lsn}",
            "total_order": position.total_order,
            "data_collection_order": position.data_collection_order,
        }
    return {
        "before": before,
        "after": after,
        "source": {
            "version": version,
            "connector": "postgresql",
            "name": connector_name,
            "ts_ms": commit_ms,
            "ts_us": commit_ms * 1000,
            "ts_ns": commit_ms * 1_000_000,
            "snapshot": snapshot,
            "db": db,
            "sequence": sequence,
            "schema": table.schema,
            "table": table.name,
            "txId": tx_id,
            "lsn": lsn,
            "xmin": None,
        },
        "transaction": transaction,
        "op": op,
        "ts_ms": now_ns // 1_000_000,
        "ts_us": now_ns // 1000,
        "ts_ns": now_ns,
    }
