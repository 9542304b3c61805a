"""Shared helpers of the Delta Lake sink tests."""

from __future__ import annotations

from typing import Any

from danube_connect_core.records import SinkRecord
from danube_connect_core.testing import make_config
from danube_sink_deltalake.connector import DeltaLakeSink
from danube_sink_deltalake.settings import DeltaLakeSettings

TOPIC = "/default/payments"

COLUMNS: list[dict[str, Any]] = [
    {"path": "$.id", "column": "id", "type": "int64", "nullable": False},
    {"path": "$.name", "column": "name", "type": "string"},
    {"path": "$.amount", "column": "amount", "type": "float64"},
    {"path": "$.meta.region", "column": "region", "type": "string"},
]


def record(i: int, partition: int | None = 0, payload: Any = None, offset: int | None = None) -> SinkRecord:
    return SinkRecord(
        payload=payload if payload is not None else payment(i),
        topic=TOPIC,
        partition=partition,
        offset=i if offset is None else offset,
        publish_time=1_700_000_000_000_000 + i,
        producer_name="p",
        attributes={"a": "1"},
        schema=None,
        key=None,
        subscription="delta",
    )


def payment(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"n{i}", "amount": i / 4, "meta": {"region": "eu" if i % 2 else "us"}}


def settings(table: str, **mapping: Any) -> DeltaLakeSettings:
    m: dict[str, Any] = {"topic": TOPIC, "subscription": "delta", "table": table, "columns": COLUMNS}
    m.update(mapping)
    return DeltaLakeSettings.model_validate({"topic_mappings": [m]})


async def sink_for(table: str, name: str = "delta-test", **mapping: Any) -> DeltaLakeSink:
    sink = DeltaLakeSink()
    await sink.initialize(make_config("http://127.0.0.1:1", name, settings(table, **mapping)))
    return sink
