"""connect-core's shared JSON -> column conversion: the batch path stores exactly what the per-value
converters give, and rejects exactly the rows they refuse, with the same reasons."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from danube_connect_core import columns as col
from danube_connect_core.records import SinkRecord

INT64 = (-(1 << 63), (1 << 63) - 1)


def column(kind: str, *, nullable: bool = True, key: str = "v") -> col.Column:
    spec: dict[str, tuple[Any, col.Converter, col.Fast]] = {
        "int64": (pa.int64(), col.integer(*INT64, bools=False, type_name="int64"), col.Fast.INT),
        "uint8": (pa.uint8(), col.integer(0, 255, bools=True), col.Fast.INT),
        "float64": (pa.float64(), col.floating, col.Fast.FLOAT),
        "bool": (pa.bool_(), col.boolean(numbers=False), col.Fast.BOOL),
        "string": (pa.string(), col.string(containers=False), col.Fast.STRING),
        "text": (pa.string(), col.string(containers=True), col.Fast.STRING),
        "ts": (pa.timestamp("us", tz="UTC"), col.timestamp_micros, col.Fast.TIMESTAMP),
        "ts_ms": (pa.timestamp("ms", tz="UTC"), col.timestamp_micros, col.Fast.TIMESTAMP),
        "json": (pa.string(), col.json_text, col.Fast.JSON),
        "binary": (pa.binary(), col.binary, col.Fast.BINARY),
        "date": (pa.date32(), col.date, col.Fast.NONE),
    }
    arrow_type, convert, fast = spec[kind]
    return col.Column(
        name=key,
        arrow_type=arrow_type,
        nullable=nullable,
        convert=convert,
        fast=fast,
        missing_reason=lambda what: f"{key} is {what}",
        error_prefix=f"column {key}",
        key=key,
    )


def one_by_one(c: col.Column, payloads: list[Any]) -> tuple[list[Any], dict[int, str]]:
    """The reference: every value through the converter alone, then pyarrow on the converted values."""
    values: list[Any] = []
    rejected: dict[int, str] = {}
    for i, p in enumerate(payloads):
        v = p.get(c.key, col.MISSING) if isinstance(p, dict) else col.MISSING
        if v is None or v is col.MISSING:
            if not c.nullable:
                rejected[i] = c.missing_reason("missing" if v is col.MISSING else "null")
            values.append(None)
            continue
        try:
            values.append(c.convert(v))
        except ValueError as exc:
            rejected[i] = f"{c.error_prefix}: {exc}"
            values.append(None)
    if c.fast is col.Fast.TIMESTAMP:
        micros = pa.array(values, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        return micros.cast(c.arrow_type, safe=False).to_pylist(), rejected
    return pa.array(values, c.arrow_type).to_pylist(), rejected


CASES: list[tuple[str, list[Any]]] = [
    ("int64", [1, 2, 3]),
    ("int64", [1, None, 3]),
    ("int64", [1, 1.0, 1.5, "7", True, 2**63, -(2**63), {"a": 1}]),
    ("uint8", [0, 255, 256, -1, True]),
    ("float64", [1.5, 2, None]),
    ("float64", [1.5, True, 2**64 - 1, 2**64, 2**60 + 1, "2.5", 10**400]),
    ("bool", [True, False, None]),
    ("bool", [True, 1, "false", 0.0]),
    ("string", ["a", "b", None]),
    ("string", ["a", 1, 1.5, True, {"a": 1}, [1], b"x", 10**20]),
    ("text", ["a", {"k": [10**20]}, [1, "x"], 3]),
    ("ts", [1_705_004_567, 1_705_004_567_123, 1_705_004_567_123_456, None]),
    ("ts", [1_705_004_567, -1_705_004_567, 0, 99_999_999_999, -60_000_000_000, None]),
    ("ts_ms", [1_705_004_567, 0, -1]),
    ("uint8", [0, 255, None]),
    ("bool", [None, None]),
    ("string", [None, None]),
    ("ts", [1_705_004_567, 10**18, -(10**18), 2**63 - 1, -(2**63), 10**30, True]),
    ("ts", ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00", "2024-05-01T14:00:00+02:00", "nope"]),
    ("ts", [1.5, 1_705_004_567.25, dt.datetime(2024, 5, 1, tzinfo=dt.UTC)]),
    ("ts_ms", [1_705_004_567, 1_705_004_567_123_456, "2024-05-01T12:00:00.123456Z"]),
    ("json", [{"a": [1, 2]}, "s", 3, None, True]),
    ("json", [{"a": 10**20}, {"b": b"\x00"}]),
    ("binary", ["x", "é", None]),
    ("binary", [b"\x00\x01", b"y"]),
    ("binary", ["x", b"y", 3]),
    ("date", ["2024-05-01", "2024-05-01T10:00:00Z", "20240501", "x", 5]),
]


@pytest.mark.parametrize("nullable", [True, False])
@pytest.mark.parametrize(("kind", "values"), CASES)
def test_batch_equals_one_by_one(kind: str, values: list[Any], nullable: bool) -> None:
    c = column(kind, nullable=nullable)
    payloads: list[Any] = [{"v": v} for v in values] + [{}, "not an object"]
    built = col.build_columns([c], payloads)
    expected, rejected = one_by_one(c, payloads)
    assert built.rejected == rejected
    got = built.arrays[0].to_pylist()
    kept = [i for i in range(len(payloads)) if i not in rejected]
    assert [got[i] for i in kept] == [expected[i] for i in kept]
    assert built.arrays[0].type == c.arrow_type


def test_first_failing_column_names_the_row_and_keep_mask() -> None:
    a, b = column("int64", nullable=False, key="a"), column("string", nullable=False, key="b")
    built = col.build_columns(
        [a, b], [{"a": 1, "b": "x"}, {"a": "z", "b": [1]}, {"b": "y"}, {"a": 2, "b": 3}]
    )
    assert built.rejected == {
        1: "column a: expected an integer, got the string 'z'",
        2: "a is missing",
    }
    assert built.keep_mask(4) == [True, False, False, True]
    assert built.arrays[1].to_pylist()[3] == "3"
    assert col.build_columns([a], [{"a": 1}]).keep_mask(1) is None


def test_timestamps_by_magnitude() -> None:
    c = column("ts")
    built = col.build_columns(
        [c], [{"v": 1_714_564_800}, {"v": 1_714_564_800_000}, {"v": 1_714_564_800_000_000}]
    )
    assert built.arrays[0].to_pylist() == [dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)] * 3


def record(offset: int, partition: int | None, **kw: Any) -> SinkRecord:
    fields: dict[str, Any] = {
        "payload": {},
        "topic": "/default/t",
        "partition": partition,
        "offset": offset,
        "publish_time": 1_700_000_000_000_000 + offset,
        "producer_name": "p",
        "attributes": {"k": "v"},
        "schema": None,
        "key": None,
        "request_id": 7,
    }
    fields.update(kw)
    return SinkRecord(**fields)


def test_record_fields_match_the_records() -> None:
    from types import MappingProxyType

    records = [
        record(5, 1, key="k1"),
        record(6, None),
        record(0, 2),  # offset 0: the id names the producer
        record(9, 3, attributes=MappingProxyType({"b": "2", "a": "1"})),
    ]
    f = col.record_fields(records)
    assert f.message_ids.to_pylist() == [r.message_id for r in records]
    assert f.partitions.to_pylist() == [1, None, 2, 3]
    assert f.offsets.to_pylist() == [5, 6, 0, 9]
    assert f.keys.to_pylist() == ["k1", None, None, None]
    assert f.attributes.to_pylist() == ['{"k":"v"}', '{"k":"v"}', '{"k":"v"}', '{"b":"2","a":"1"}']
    assert f.publish_micros.to_pylist() == [r.publish_time for r in records]
    assert col.record_fields([]).message_ids.to_pylist() == []


def test_record_fields_of_a_uniform_batch_and_of_mixed_topics() -> None:
    """One topic and no attributes (the repeated-value case) and two topics give the records' own values."""
    for records in (
        [record(o, o % 2, attributes={}) for o in range(4)],
        [record(1, 0, attributes={}), record(2, 0, topic="/default/u", attributes={"a": "1"})],
    ):
        f = col.record_fields(records)
        assert f.topics.to_pylist() == [r.topic for r in records]
        assert f.attributes.to_pylist() == [orjson.dumps(dict(r.attributes)).decode() for r in records]
        assert f.message_ids.to_pylist() == [r.message_id for r in records]


def test_dedup_token_equals_hashing_the_ids_one_by_one() -> None:
    import hashlib

    ids = [f"/default/t:{p}:{o}" for p in range(3) for o in range(1, 50)]
    h = hashlib.sha256()
    for i in ids:
        h.update(i.encode() + b"\n")
    expected = f"danube-{h.hexdigest()[:40]}"
    arr = pa.array(["skip", *ids], pa.string())
    assert col.dedup_token(arr.slice(1)) == expected
    assert col.dedup_token(pa.array(ids, pa.string())) == expected


def test_record_positions_match_record_fields() -> None:
    records = [record(5, 1), record(6, None), record(7, 3)]
    partitions, offsets = col.record_positions(records)
    fields = col.record_fields(records)
    assert partitions.equals(fields.partitions) and offsets.equals(fields.offsets)
