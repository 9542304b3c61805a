"""exact_json keeps integers of any size exact and accepts exactly what orjson accepts."""

from __future__ import annotations

import json

import orjson
import pytest
from danube_connect_core import exact_json
from hypothesis import given, settings
from hypothesis import strategies as st

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_json_values)
def test_round_trip_is_exact_for_any_integer_size(value: object) -> None:
    assert exact_json.loads(exact_json.dumps(value)) == value


def test_big_integers_are_not_rounded() -> None:
    doc = b'{"amount": 100000000000000000001, "low": -9223372036854775809}'
    assert orjson.loads(doc)["amount"] != 100000000000000000001  # why this module exists
    assert exact_json.loads(doc) == {"amount": 100000000000000000001, "low": -9223372036854775809}
    assert exact_json.dumps({"n": 10**30}) == b'{"n":1000000000000000000000000000000}'


@pytest.mark.parametrize(
    "doc",
    [
        b"NaN",
        b'{"a": 12345678901234567890, "b": Infinity}',
        b'{"a": 12345678901234567890, "b": "\xff"}',
        b'{"a": 12345678901234567890,',
        b"",
    ],
)
def test_refuses_what_orjson_refuses_on_both_paths(doc: bytes) -> None:
    with pytest.raises(exact_json.JSONDecodeError):
        exact_json.loads(doc)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(doc)


def test_values_json_cannot_hold_raise_type_error() -> None:
    with pytest.raises(TypeError):
        exact_json.dumps({"x": float("nan"), "n": 10**20})
    with pytest.raises(TypeError):
        exact_json.dumps({"x": object()})
    assert json.loads(exact_json.dumps({"ok": "ü"})) == {"ok": "ü"}
