"""Classifying ClickHouse failures into the runtime's error kinds.

- connection problems and server overload (TOO_MANY_PARTS, memory limit, timeouts, read-only replica,
  unknown insert status, Keeper errors) -> Retryable (invariant 5: an outage is not poison);
- a value the column cannot take (parse/convert/type errors, a violated CHECK constraint, also errors
  raised client-side while serialising)
  -> data: the writer isolates the bad rows and dead-letters only them;
- authentication, missing table/column -> Fatal (configuration; no retry fixes it).

Error texts are truncated and never include credentials (clickhouse-connect does not echo them).
"""

from __future__ import annotations

import enum
import re

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

__all__ = ["FailureKind", "classify", "error_code", "short"]

#: Server error codes meaning "this data cannot go into this column".
DATA_CODES = frozenset(
    {6, 26, 27, 38, 41, 43, 53, 69, 70, 72, 76, 117, 131, 190, 321, 349, 354, 377, 386, 395, 469, 691}
)
#: Codes meaning the configuration is wrong (credentials, missing table or column, permissions).
FATAL_CODES = frozenset({16, 47, 60, 81, 192, 193, 194, 195, 497, 516})

_CODE = re.compile(r"Code:\s*(\d+)")


class FailureKind(enum.Enum):
    RETRYABLE = "retryable"
    DATA = "data"
    FATAL = "fatal"


def error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    m = _CODE.search(str(exc))
    return int(m.group(1)) if m else None


def classify(exc: BaseException) -> FailureKind:
    if isinstance(exc, ValueError | TypeError | OverflowError | UnicodeError) and not isinstance(
        exc, DatabaseError
    ):
        return FailureKind.DATA  # clickhouse-connect failed to serialise a value client-side
    if isinstance(exc, OperationalError):
        return FailureKind.RETRYABLE
    code = error_code(exc)
    if code in DATA_CODES:
        return FailureKind.DATA
    if code in FATAL_CODES:
        return FailureKind.FATAL
    return FailureKind.RETRYABLE


def short(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:limit]}"
