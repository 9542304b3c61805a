"""Sorting SurrealDB SDK failures into what the sink does about them.

- :class:`ConnectionProblem`: the database is unreachable or the connection broke (refused, closed,
  timed out, HTTP 5xx, an expired session, a refused permission, a missing namespace/database/table).
  Retried with backoff, never poison (invariant 5).
- :class:`StatementRejected`: the database answered and refused the statement (a field type, a
  constraint, a value it cannot store). This may be caused by the data: the writer looks for the records
  responsible (invariant 5).
"""

from __future__ import annotations

import asyncio

import aiohttp
from surrealdb import (
    ConnectionUnavailableError,
    NotAllowedError,
    NotFoundError,
    QueryError,
    ServerError,
    SurrealError,
)
from websockets.exceptions import WebSocketException

__all__ = ["ConnectionProblem", "StatementRejected", "classify"]


class ConnectionProblem(Exception):
    """Transient: reconnect and retry."""


class StatementRejected(Exception):
    """The statement was refused by the database (possibly because of the data it carried)."""


def classify(exc: BaseException) -> ConnectionProblem | StatementRejected:
    """The kind of ``exc`` (raised by an SDK call), with a message safe to log (no credentials)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError | WebSocketException):
        return ConnectionProblem(text)
    if isinstance(exc, aiohttp.ClientError):
        return ConnectionProblem(text)
    if isinstance(exc, ConnectionUnavailableError):
        return ConnectionProblem(text)
    if isinstance(exc, NotAllowedError):
        # Authentication or permission trouble (an expired token, a revoked user): not the data's fault.
        return ConnectionProblem(text)
    if isinstance(exc, NotFoundError):
        # A namespace, database or table that does not exist (strict mode): configuration, not data.
        return ConnectionProblem(text)
    if isinstance(exc, QueryError) and (exc.is_timed_out or exc.is_cancelled):
        return ConnectionProblem(text)
    if isinstance(exc, ServerError) and exc.kind == "Connection":
        return ConnectionProblem(text)
    if isinstance(exc, ServerError | SurrealError | ValueError | TypeError | RuntimeError):
        # ValueError/TypeError: the SDK could not encode a value (e.g. an integer beyond 64 bits);
        # RuntimeError: the embedded engine refused the statement.
        return StatementRejected(str(exc) or type(exc).__name__)
    return ConnectionProblem(text)
