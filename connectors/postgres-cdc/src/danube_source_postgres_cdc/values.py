"""Turning PostgreSQL values (their text output form) into JSON values, the same way for every path.

Both output plugins and the snapshot hand over values in PostgreSQL's text output form (the snapshot
selects ``column::text``; the sessions run with ``TimeZone=UTC``, ``DateStyle=ISO`` and
``IntervalStyle=iso_8601``), so one converter keyed by the column's type gives identical results for a
row whether it was read by the snapshot or decoded from the WAL:

==========================  ==================================================================
PostgreSQL type             JSON value
==========================  ==================================================================
smallint/integer/bigint/oid number
real/double precision       number (``"NaN"``, ``"Infinity"``, ``"-Infinity"`` as strings)
numeric, money              string, exactly as PostgreSQL prints it (no float rounding; NaN and
                            the infinities as those strings too)
boolean                     true / false
json, jsonb                 the JSON value itself (not a string holding JSON), written as the text
                            PostgreSQL holds: numbers keep every digit (``1.50``, 30-digit integers),
                            a json column keeps its text as stored (key order, duplicate keys)
bytea                       base64 string
timestamp                   ISO-8601 string ``2024-05-01T12:00:00.5``
timestamp with time zone    ISO-8601 string in UTC ``2024-05-01T12:00:00.5+00:00``
date, time, time with tz    ISO-8601 strings; interval: ISO-8601 duration (``P1DT2H``)
arrays (any dimension)      JSON arrays of the converted elements (NULL elements -> null)
domains                     converted as their base type
anything else (enum, uuid,  the text form as a string
text, inet, geometry...)
NULL                        null
==========================  ==================================================================
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["TypeInfo", "ValueConverter", "parse_array_literal"]

_INT_TYPES = {20, 21, 23, 26, 28, 5069}
_FLOAT_TYPES = {700, 701}
_STRING_NUMBERS = {1700, 790}
_BOOL = 16
_JSON_TYPES = {114, 3802}
_BYTEA = 17
_TIMESTAMP = 1114
_TIMESTAMPTZ = 1184
_TIMETZ = 1266


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """What the converter needs from ``pg_type`` for one type."""

    oid: int
    category: str  # typcategory: 'A' array, 'N' numeric, ...
    element: int  # typelem (arrays)
    base: int  # typbasetype (domains), 0 otherwise
    delimiter: str = ","


Converter = Callable[[Any], Any]


class ValueConverter:
    """Converts text-form values by type OID. Types it was not told about are kept as strings."""

    def __init__(self) -> None:
        self._types: dict[int, TypeInfo] = {}
        self._cache: dict[int, Converter] = {}

    def knows(self, oid: int) -> bool:
        return oid in self._types or _is_builtin_scalar(oid)

    def add(self, info: TypeInfo) -> None:
        self._types[info.oid] = info
        self._cache.clear()

    def convert(self, oid: int, value: Any) -> Any:
        if value is None:
            return None
        fn = self._cache.get(oid)
        if fn is None:
            fn = self._cache[oid] = self._build(oid, depth=0)
        return fn(value)

    def _build(self, oid: int, depth: int) -> Converter:
        info = self._types.get(oid)
        if info is not None and depth < 8:
            if info.base:
                return self._build(info.base, depth + 1)
            if info.category == "A" and info.element:
                element = self._build(info.element, depth + 1)
                delimiter = info.delimiter
                return lambda v: _convert_array(v, element, delimiter)
        return _scalar(oid)


def _is_builtin_scalar(oid: int) -> bool:
    return oid in _INT_TYPES | _FLOAT_TYPES | _STRING_NUMBERS | _JSON_TYPES | {
        _BOOL,
        _BYTEA,
        _TIMESTAMP,
        _TIMESTAMPTZ,
        _TIMETZ,
        25,
        1043,
        1042,
        19,
        1082,
        1083,
        1186,
        2950,
    }


def _scalar(oid: int) -> Converter:
    if oid in _INT_TYPES:
        return _to_int
    if oid in _FLOAT_TYPES:
        return _to_float
    if oid in _STRING_NUMBERS:
        return str
    if oid == _BOOL:
        return _to_bool
    if oid in _JSON_TYPES:
        return _to_json
    if oid == _BYTEA:
        return _to_base64
    if oid == _TIMESTAMP:
        return _to_timestamp
    if oid == _TIMESTAMPTZ:
        return _to_timestamptz
    if oid == _TIMETZ:
        return _fix_offset
    return _to_str


def _to_str(value: Any) -> Any:
    return value if isinstance(value, str) else str(value)


def _to_int(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    return int(value)


def _to_float(value: Any) -> Any:
    if isinstance(value, float):
        return value
    text = str(value)
    if text in ("NaN", "Infinity", "-Infinity"):
        return text
    return float(text)


def _to_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    return str(value) in ("t", "true", "1", "True")


def _to_json(value: Any) -> Any:
    """The JSON text as an :class:`orjson.Fragment`: serialised verbatim, so no number goes through a
    float. Events holding one are published as the bytes orjson writes (see ``connector._record``)."""
    if isinstance(value, str):
        return orjson.Fragment(value)
    if isinstance(value, bytes):
        return orjson.Fragment(value)
    return value


def _to_base64(value: Any) -> Any:
    text = str(value)
    if text.startswith("\\x"):
        text = text[2:]
    return base64.b64encode(bytes.fromhex(text)).decode("ascii")


def _to_timestamp(value: Any) -> Any:
    text = str(value)
    if text[:1].isdigit() and " " in text and not text.endswith(" BC"):
        return text.replace(" ", "T", 1)
    return text  # infinity, -infinity, BC dates: kept as PostgreSQL prints them


def _to_timestamptz(value: Any) -> Any:
    text = _to_timestamp(value)
    return _fix_offset(text) if "T" in text else text


def _fix_offset(value: Any) -> Any:
    """``...+00`` -> ``...+00:00`` (ISO-8601 wants hours and minutes)."""
    text = str(value)
    if len(text) >= 3 and text[-3] in "+-" and text[-2:].isdigit():
        return f"{text}:00"
    return text


def _convert_array(value: Any, element: Converter, delimiter: str) -> Any:
    if isinstance(value, list):
        return [_convert_nested(v, element) for v in value]
    return _convert_nested(parse_array_literal(str(value), delimiter), element)


def _convert_nested(value: Any, element: Converter) -> Any:
    if isinstance(value, list):
        return [_convert_nested(v, element) for v in value]
    return None if value is None else element(value)


def parse_array_literal(text: str, delimiter: str = ",") -> list[Any]:
    """Parse PostgreSQL's array output (``{1,NULL,"a b",{2,3}}``) into nested lists of strings/None.

    A leading dimension decoration (``[0:1]={...}``) is skipped. Raises ValueError on malformed input.
    """
    pos = 0
    if text.startswith("["):
        pos = text.index("=") + 1
    result, end = _parse_array(text, pos, delimiter)
    if text[end:].strip():
        raise ValueError(f"trailing characters in array literal: {text!r}")
    return result


def _parse_array(text: str, pos: int, delimiter: str) -> tuple[list[Any], int]:
    if text[pos] != "{":
        raise ValueError(f"array literal must start with '{{': {text!r}")
    pos += 1
    out: list[Any] = []
    if text[pos] == "}":
        return out, pos + 1
    while True:
        ch = text[pos]
        if ch == "{":
            sub, pos = _parse_array(text, pos, delimiter)
            out.append(sub)
        elif ch == '"':
            pos += 1
            buf: list[str] = []
            while text[pos] != '"':
                if text[pos] == "\\":
                    pos += 1
                buf.append(text[pos])
                pos += 1
            out.append("".join(buf))
            pos += 1
        else:
            start = pos
            while text[pos] not in (delimiter, "}"):
                pos += 1
            raw = text[start:pos].strip()
            out.append(None if raw == "NULL" else raw)
        if text[pos] == delimiter:
            pos += 1
            continue
        if text[pos] == "}":
            return out, pos + 1
        raise ValueError(f"malformed array literal: {text!r}")
