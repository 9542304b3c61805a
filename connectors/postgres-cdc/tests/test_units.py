"""Unit tests: LSNs, value conversion, array literals, snapshot visibility, settings."""

from __future__ import annotations

import orjson
import pytest
from danube_source_postgres_cdc.catalog import split_table_name
from danube_source_postgres_cdc.lsn import format_lsn, parse_lsn
from danube_source_postgres_cdc.settings import PostgresSettings
from danube_source_postgres_cdc.snapshot import SnapshotFilter
from danube_source_postgres_cdc.values import TypeInfo, ValueConverter, parse_array_literal
from pydantic import ValidationError


def test_lsn_round_trip() -> None:
    assert parse_lsn("16/B374D848") == 0x16B374D848
    assert format_lsn(0x16B374D848) == "16/B374D848"
    assert format_lsn(parse_lsn("0/0")) == "0/0"


def test_scalar_conversions() -> None:
    c = ValueConverter()
    assert c.convert(1700, "1.10") == "1.10"
    assert c.convert(23, "42") == 42
    assert c.convert(701, "0.5") == 0.5 and c.convert(701, "NaN") == "NaN"
    assert c.convert(16, "t") is True and c.convert(16, False) is False
    exact = '{"a": [1, 2.50], "b": 123456789012345678901234567890}'
    assert orjson.dumps({"j": c.convert(3802, exact)}) == b'{"j":' + exact.encode() + b"}"  # verbatim
    assert c.convert(17, "\\x00ff") == "AP8=" and c.convert(17, "00ff") == "AP8="
    assert c.convert(1114, "2024-05-01 12:00:00.5") == "2024-05-01T12:00:00.5"
    assert c.convert(1184, "2024-05-01 12:00:00+00") == "2024-05-01T12:00:00+00:00"
    assert c.convert(1184, "infinity") == "infinity"
    assert c.convert(25, None) is None


def test_arrays_and_domains() -> None:
    c = ValueConverter()
    c.add(TypeInfo(1007, "A", 23, 0))
    c.add(TypeInfo(99999, "N", 0, 1700))  # a domain over numeric
    assert c.convert(1007, "{1,NULL,3}") == [1, None, 3]
    assert c.convert(1007, "{{1,2},{3,4}}") == [[1, 2], [3, 4]]
    assert c.convert(99999, "2.50") == "2.50"
    assert parse_array_literal('{"a b","c\\"d",NULL,"NULL"}') == ["a b", 'c"d', None, "NULL"]
    assert parse_array_literal("{}") == []
    assert parse_array_literal("[0:1]={1,2}") == ["1", "2"]


def test_snapshot_visibility() -> None:
    f = SnapshotFilter.parse("100:105:101,103")
    assert f.visible(99) and f.visible(102) and f.visible(104)
    assert not f.visible(101) and not f.visible(103) and not f.visible(105) and not f.visible(200)
    assert not f.visible(None)
    # 64-bit snapshot in epoch 1, 32-bit xids from the WAL
    g = SnapshotFilter.parse(f"{(1 << 32) + 10}:{(1 << 32) + 20}:")
    assert g.visible(15) and not g.visible(25) and g.visible(0xFFFFFFF0)


def test_table_names() -> None:
    assert split_table_name("orders") == ("public", "orders")
    assert split_table_name("Shop.Orders") == ("shop", "orders")
    assert split_table_name('"My Schema"."Order.Items"') == ("My Schema", "Order.Items")


def test_settings_validation() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        PostgresSettings.model_validate({})
    with pytest.raises(ValidationError, match="slot_name"):
        PostgresSettings.model_validate(
            {"slot_name": "Bad-Name", "table_mappings": [{"table": "t", "danube_topic": "/default/t"}]}
        )
    with pytest.raises(ValidationError, match="mapped twice"):
        PostgresSettings.model_validate(
            {
                "table_mappings": [
                    {"table": "t", "danube_topic": "/default/t"},
                    {"table": "t", "danube_topic": "/default/u"},
                ]
            }
        )
