"""Shared helpers of the ClickHouse sink tests."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import pytest
from danube_connect_core.records import SinkRecord
from danube_connect_core.testing import make_config
from danube_sink_clickhouse.connector import ClickHouseSink
from danube_sink_clickhouse.settings import ClickHouseSettings

TOPIC = "/default/events"

METADATA_DDL = """,
    _danube_topic LowCardinality(String),
    _danube_partition Int32,
    _danube_offset Int64,
    _danube_message_id String,
    _danube_publish_time DateTime64(6, 'UTC'),
    _danube_key String,
    _danube_attributes String"""


def require_chdb() -> None:
    if importlib.util.find_spec("chdb") is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("chdb is not installed (it is in the root dev group)")
        pytest.skip("chdb is not installed")


def table_ddl(db: str, table: str = "events", metadata: bool = True, extra: str = "") -> str:
    order = "(_danube_topic, _danube_partition, _danube_offset)" if metadata else "id"
    return f"""CREATE TABLE {db}.{table} (
    id Int64,
    name String,
    amount Float64,
    region Nullable(String),
    at DateTime64(3, 'UTC'),
    tags Array(String){extra}{METADATA_DDL if metadata else ""}
) ENGINE = MergeTree ORDER BY {order}
SETTINGS non_replicated_deduplication_window = 1000"""


def event(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"n{i}",
        "amount": i / 4,
        "region": None if i % 3 == 0 else "eu",
        "at": f"2024-05-01T00:00:{i % 60:02d}Z",
        "tags": ["a", str(i % 7)],
    }


def record(i: int, partition: int | None = 0, payload: Any = None, offset: int | None = None) -> SinkRecord:
    return SinkRecord(
        payload=event(i) if payload is None else payload,
        topic=TOPIC,
        partition=partition,
        offset=i if offset is None else offset,
        publish_time=1_700_000_000_000_000 + i,
        producer_name="p",
        attributes={"k": "v"},
        schema=None,
        key=None,
        subscription="ch",
    )


def settings(dsn: str, db: str, table: str = "events", **mapping: Any) -> ClickHouseSettings:
    m: dict[str, Any] = {"topic": TOPIC, "subscription": "ch", "table": table, "include_metadata": True}
    m.update(mapping)
    return ClickHouseSettings.model_validate({"url": dsn, "database": db, "topic_mappings": [m]})


async def sink_for(dsn: str, db: str, table: str = "events", **mapping: Any) -> ClickHouseSink:
    sink = ClickHouseSink()
    await sink.initialize(make_config("http://127.0.0.1:1", "ch-test", settings(dsn, db, table, **mapping)))
    return sink
