"""payload_format: a topic's schema type decides over the mapping's payload_format, and bytes become the
documented record, or InvalidData with a reason naming what the caller reads."""

from __future__ import annotations

import pytest
from danube_connect_core import InvalidData, SourceRecord, read_format, read_payload


def test_a_schema_type_decides_over_payload_format() -> None:
    assert read_format("json_schema", "bytes") == "json_schema"
    assert read_format("avro", "string") == "json_schema"
    assert read_format("number", "auto") == "number"
    assert read_format("string", "bytes") == "string"
    assert read_format("bytes", "json") == "bytes"
    assert read_format("something-new", "json") == "bytes"
    for fmt in ("auto", "json", "string", "bytes"):
        assert read_format(None, fmt) == fmt


@pytest.mark.parametrize(
    ("fmt", "payload", "kind", "expected"),
    [
        ("bytes", b"\xff raw", "bytes", b"\xff raw"),
        ("json_schema", b"not even json", "bytes", b"not even json"),  # the topic's codec validates it
        ("json", b'{"a": 1.50, "a": 1E3}', "bytes", b'{"a": 1.50, "a": 1E3}'),  # byte for byte
        ("string", "é".encode(), "string", "é"),
        ("number", b"1.50", "json", 1.5),
        ("number", b"123456789012345678901234567890", "json", 123456789012345678901234567890),
        ("auto", b"[1, 2]", "bytes", b"[1, 2]"),
        ("auto", b"plain text", "string", "plain text"),
        ("auto", b"\xff\xfe", "bytes", b"\xff\xfe"),
    ],
)
def test_each_format_reads_to_its_documented_record(
    fmt: str, payload: bytes, kind: str, expected: object
) -> None:
    attrs = {"origin": "x"}
    record = read_payload("/default/t", fmt, payload, attrs, key="k")  # type: ignore[arg-type]
    assert isinstance(record, SourceRecord)
    assert (record.topic, record.kind, record.payload, record.key) == ("/default/t", kind, expected, "k")
    assert record.attributes == {"origin": "x"}


def test_a_memoryview_is_read_like_bytes() -> None:
    record = read_payload("/default/t", "auto", memoryview(b'{"a": 1}'), {})  # type: ignore[arg-type]
    assert (record.kind, record.payload, record.key) == ("bytes", b'{"a": 1}', None)


@pytest.mark.parametrize(
    ("fmt", "payload", "reason"),
    [
        ("json", b"not json", "payload is not valid JSON: "),
        ("number", b"{", "payload is not valid JSON: "),
        ("json", b"\xff", "payload is not valid JSON: "),
        ("string", b"\xff", "payload is not UTF-8 text"),
    ],
)
def test_unreadable_bytes_raise_invalid_data_naming_the_noun(fmt: str, payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidData) as caught:
        read_payload("/default/t", fmt, payload, {})  # type: ignore[arg-type]
    assert caught.value.reason.startswith(reason)
    with pytest.raises(InvalidData) as caught:
        read_payload("/default/t", fmt, payload, {}, noun="value")  # type: ignore[arg-type]
    assert caught.value.reason.startswith(reason.replace("payload", "value"))
