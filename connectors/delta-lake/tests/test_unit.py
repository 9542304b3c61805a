"""Unit tests of the Delta Lake sink against real delta-rs tables on a local path."""

from __future__ import annotations

from pathlib import Path

import pytest
from danube_connect_core.errors import ConfigError, Fatal
from danube_connect_core.testing import write_batch
from danube_sink_deltalake.connector import resolve_table_uri
from danube_sink_deltalake.json_path import MISSING, JsonPath
from danube_sink_deltalake.schema_columns import columns_from_json_schema
from danube_sink_deltalake.settings import DeltaLakeSettings
from danube_sink_deltalake.storage import storage_options
from deltalake import DeltaTable
from pydantic import ValidationError

from .deltalake_helpers import TOPIC, record, sink_for


def rows(path: Path) -> list[dict[str, object]]:
    return sorted(DeltaTable(str(path)).to_pyarrow_table().to_pylist(), key=lambda r: r["id"])  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize("size", [1, 1024, 1025, 5000])
async def test_one_batch_is_one_commit_with_every_row(tmp_path: Path, size: int) -> None:
    table = tmp_path / "t"
    sink = await sink_for(str(table))
    await write_batch(sink, [record(i, partition=i % 4) for i in range(size)])
    dt = DeltaTable(str(table))
    assert dt.version() == 1  # 0 = create, 1 = the batch
    assert dt.count() == size
    got = rows(table)
    assert [r["id"] for r in got] == list(range(size))
    assert got[-1]["amount"] == (size - 1) / 4
    assert got[-1]["region"] == ("eu" if (size - 1) % 2 else "us")


@pytest.mark.parametrize("metadata", [True, False])
async def test_replayed_batch_is_skipped_per_partition(tmp_path: Path, metadata: bool) -> None:
    table = tmp_path / "t"
    sink = await sink_for(str(table), include_metadata=metadata)
    first = [record(i, partition=i % 4, offset=i // 4) for i in range(400)]
    await write_batch(sink, first)
    # A new process (fresh caches) gets a redelivery that overlaps the committed rows and goes beyond.
    sink2 = await sink_for(str(table), include_metadata=metadata)
    again = [record(i, partition=i % 4, offset=i // 4) for i in range(200, 600)]
    await write_batch(sink2, again)
    await write_batch(sink2, again)
    dt = DeltaTable(str(table))
    assert dt.count() == 600
    got = rows(table)
    assert [r["id"] for r in got] == list(range(600))
    if metadata:
        assert {(r["_danube_partition"], r["_danube_offset"]) for r in got} == {
            (i % 4, i // 4) for i in range(600)
        }
    for p in range(4):
        assert dt.transaction_version(f"danube-connect/delta-test/{TOPIC}/{p}") == 149
    assert dt.version() == 2  # the second replay committed nothing


async def test_positions_are_the_highest_offsets_whatever_the_order_in_the_batch(tmp_path: Path) -> None:
    table = tmp_path / "t"
    sink = await sink_for(str(table))
    # offsets out of order within each partition, and a topic without partitions (None) among them
    batch = [record(i, partition=None if i % 3 == 2 else i % 3, offset=(7 * i) % 30 + 1) for i in range(30)]
    await write_batch(sink, batch)
    dt = DeltaTable(str(table))
    for p in (0, 1, "none"):
        top = max(r.offset for r in batch if (r.partition if r.partition is not None else "none") == p)
        assert dt.transaction_version(f"danube-connect/delta-test/{TOPIC}/{p}") == top
    # a redelivery of it, shuffled the other way round, commits nothing
    await write_batch(await sink_for(str(table)), batch[::-1])
    assert DeltaTable(str(table)).count() == 30


async def test_invalid_records_are_named_and_the_rest_committed(tmp_path: Path) -> None:
    table = tmp_path / "t"
    sink = await sink_for(str(table))
    batch = [record(i) for i in range(10)]
    batch[3] = record(3, payload={"id": "three", "name": "x"})
    batch[7] = record(7, payload={"name": "no id"})
    batch[8] = record(8, payload="not an object")
    reported = await write_batch(sink, batch)
    assert reported.retried == {}
    reasons = reported.rejected
    assert [r.offset for r in batch if r.message_id in reasons] == [3, 7, 8]
    assert "integer" in reasons[batch[3].message_id]
    assert "not nullable" in reasons[batch[7].message_id]
    assert [r["id"] for r in rows(table)] == [0, 1, 2, 4, 5, 6, 9]


async def test_metadata_and_partition_columns(tmp_path: Path) -> None:
    table = tmp_path / "t"
    sink = await sink_for(str(table), include_metadata=True, partition_columns=["region"])
    await write_batch(sink, [record(i, partition=None) for i in range(20)])
    dt = DeltaTable(str(table))
    assert dt.metadata().partition_columns == ["region"]
    got = rows(table)
    assert len(got) == 20
    assert got[5]["_danube_message_id"] == f"{TOPIC}:5"
    assert got[5]["_danube_partition"] is None
    assert got[5]["_danube_attributes"] == '{"a":"1"}'
    assert dt.transaction_version(f"danube-connect/delta-test/{TOPIC}/none") == 19


async def test_existing_table_with_other_schema_is_fatal(tmp_path: Path) -> None:
    table = tmp_path / "t"
    await sink_for(str(table))
    with pytest.raises(Fatal, match="column x is missing"):
        await sink_for(str(table), columns=[{"path": "$.x", "column": "x", "type": "int32"}])
    with pytest.raises(Fatal, match="partitioned"):
        await sink_for(str(table), partition_columns=["region"])


def test_json_schema_columns() -> None:
    cols = columns_from_json_schema(
        {
            "type": "object",
            "required": ["id", "at"],
            "properties": {
                "id": {"type": "integer"},
                "at": {"type": "string", "format": "date-time"},
                "tags": {"type": "array"},
                "ok": {"type": ["boolean", "null"]},
            },
        }
    )
    assert [(c.column, c.type, c.nullable) for c in cols] == [
        ("id", "int64", False),
        ("at", "timestamp", False),
        ("tags", "json", True),
        ("ok", "boolean", True),
    ]


async def test_columns_from_schema_file(tmp_path: Path) -> None:
    schema = tmp_path / "payment.json"
    schema.write_text(
        '{"type":"object","required":["id"],"properties":{"id":{"type":"integer"},"name":{"type":"string"}}}'
    )
    table = tmp_path / "t"
    sink = await sink_for(str(table), columns=[], schema_file=str(schema))
    await write_batch(sink, [record(i) for i in range(3)])
    assert DeltaTable(str(table)).to_pyarrow_table().column_names == ["id", "name"]


async def test_relative_table_without_root_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="table_root"):
        await sink_for("relative/t")


def test_settings_refuse_credentials_in_toml() -> None:
    with pytest.raises(ValidationError, match="environment"):
        DeltaLakeSettings.model_validate(
            {
                "storage_options": {"AWS_SECRET_ACCESS_KEY": "x"},
                "topic_mappings": [{"topic": TOPIC, "subscription": "s", "table": "/t", "columns": []}],
            }
        )


def test_mappings_keep_one_writer_per_partition() -> None:
    mapping = {"topic": TOPIC, "subscription": "s", "table": "/t"}
    settings = DeltaLakeSettings.model_validate({"topic_mappings": [mapping]})
    assert settings.topic_mappings[0].subscription_type.value == "Failover"
    for refused in ("Shared", "KeyShared"):
        with pytest.raises(ValidationError, match="Failover or Exclusive"):
            DeltaLakeSettings.model_validate({"topic_mappings": [{**mapping, "subscription_type": refused}]})
    exclusive = DeltaLakeSettings.model_validate(
        {"topic_mappings": [{**mapping, "subscription_type": "Exclusive"}]}
    )
    assert exclusive.topic_mappings[0].subscription_type.value == "Exclusive"


def test_storage_options_env_wins_and_filters() -> None:
    opts = storage_options({"AWS_REGION": "a"}, {"AWS_REGION": "b", "HOME": "/root", "AZURE_X": "1"})
    assert opts == {"AWS_REGION": "b", "AZURE_X": "1"}


def test_uri_resolution_and_json_path() -> None:
    assert resolve_table_uri("s3://b/t", "/root") == "s3://b/t"
    assert resolve_table_uri("t", "s3://b/base/") == "s3://b/base/t"
    assert resolve_table_uri("t", "/data") == "/data/t"
    doc = {"a": {"b": [{"c": 1}]}, "x-y": 2}
    assert JsonPath("$.a.b[0].c").get(doc) == 1
    assert JsonPath("a.b[1].c").get(doc) is MISSING
    assert JsonPath("$['x-y']").get(doc) == 2
    assert JsonPath("$").get(doc) == doc


async def test_timestamp_and_json_columns(tmp_path: Path) -> None:
    import datetime as dt

    table = tmp_path / "t"
    cols = [
        {"path": "$.id", "column": "id", "type": "int64", "nullable": False},
        {"path": "$.at", "column": "at", "type": "timestamp"},
        {"path": "$.extra", "column": "extra", "type": "json"},
    ]
    sink = await sink_for(str(table), columns=cols)
    at = ["2024-05-01T12:00:00Z", 1714564800, 1714564800000, 1714564800000000, "2024-05-01T12:00:00"]
    await write_batch(
        sink, [record(i, payload={"id": i, "at": a, "extra": {"k": [i]}}) for i, a in enumerate(at)]
    )
    got = rows(table)
    assert [r["at"] for r in got] == [dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)] * 5
    assert got[2]["extra"] == '{"k":[2]}'


async def test_integers_beyond_64_bits_are_exact_or_dead_lettered(tmp_path: Path) -> None:
    big = 10**20 + 1
    table = tmp_path / "t"
    cols = [
        {"path": "$.id", "column": "id", "type": "int64", "nullable": False},
        {"path": "$.n", "column": "n", "type": "int64"},
        {"path": "$.f", "column": "f", "type": "float64"},
        {"path": "$.s", "column": "s", "type": "string"},
        {"path": "$.extra", "column": "extra", "type": "json"},
    ]
    sink = await sink_for(str(table), columns=cols)
    batch = [
        record(0, payload={"id": 0, "s": big, "extra": {"k": [big, -big]}}),  # text columns keep it exact
        record(1, payload={"id": 1, "n": big}),  # int64 cannot hold it
        record(2, payload={"id": 2, "f": -big}),  # float64 would round it
        record(3, payload={"id": 3, "f": 10**400}),  # float64 would overflow
        record(4, payload={"id": 4, "extra": {"blob": b"\x00"}}),  # not JSON-writable (Avro bytes)
        record(5, payload={"id": 5, "n": 2**63 - 1, "f": 2**64 - 1}),  # the 64-bit edges still fit
    ]
    reported = await write_batch(sink, batch)
    assert reported.retried == {}
    reasons = {r.offset: reported.rejected[r.message_id] for r in batch if r.message_id in reported.rejected}
    assert sorted(reasons) == [1, 2, 3, 4]
    assert "out of range for int64" in reasons[1]
    assert "beyond 64 bits" in reasons[2]
    assert "beyond 64 bits" in reasons[3] and "(401 digits)" in reasons[3]
    assert "cannot be written as JSON" in reasons[4]
    got = {r["id"]: r for r in rows(table)}
    assert sorted(got) == [0, 5]
    assert got[0]["s"] == "100000000000000000001"
    assert got[0]["extra"] == '{"k":[100000000000000000001,-100000000000000000001]}'
    assert got[5]["n"] == 2**63 - 1
