"""JSON with integers kept exact: orjson's speed, the standard library's range.

orjson reads an integer beyond 64 bits as a float (``100000000000000000000`` becomes ``1e+20``) and
refuses to write one. Data must reach Danube as it was sent (invariant 4), so a document with a run of
19 or more digits — the only way to spell such an integer — is read with the standard library, which
keeps Python's arbitrary-precision ints; everything else takes the fast path. Both readers accept the same
documents: UTF-8 only, no NaN/Infinity literals.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["JSONDecodeError", "dumps", "loads"]

JSONDecodeError = json.JSONDecodeError  # orjson.JSONDecodeError is a subclass of it
_LONG_DIGIT_RUN = re.compile(rb"\d{19,}")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(data: bytes | str) -> Any:
    """Parse a JSON document; raise :class:`JSONDecodeError` (a ValueError) when it is not one."""
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_DIGIT_RUN.search(raw) is None:
        return orjson.loads(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONDecodeError(f"not UTF-8: {exc.reason}", "", exc.start) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        if isinstance(exc, JSONDecodeError):
            raise
        raise JSONDecodeError(str(exc), text, 0) from None


def dumps(value: Any) -> bytes:
    """Serialise compactly; integers of any size are written exactly. Raises TypeError for values JSON
    cannot hold."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:  # NaN or Infinity
        raise TypeError(str(exc)) from None
