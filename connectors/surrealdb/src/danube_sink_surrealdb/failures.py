"""Sorting SurrealDB SDK failures into what the sink does about them.

- :class:`ConnectionProblem`: the database is unreachable or the connection broke (refused, closed,
  timed out, HTTP 5xx, an expired session, a refused permission, a missing namespace/database/table).
  Retried with backoff, never poison (invariant 5).
- :class:`StorageProblem` (a ConnectionProblem): the datastore's storage failed (a full or read-only
  disk, an I/O error). Retried like any outage, never blamed on the data (invariant 5); an embedded engine
  is reopened, because its commit log stays broken after one failed write ("fsync failed" on every later
  transaction) until the store is opened again, which also repairs the torn tail of the log.
- :class:`StatementRejected`: the database answered and refused the statement (a field type, a
  constraint, a value it cannot store). This may be caused by the data: the writer looks for the records
  responsible (invariant 5).
"""

from __future__ import annotations

import asyncio
import re

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

__all__ = ["ConnectionProblem", "StatementRejected", "StorageProblem", "classify"]

#: How SurrealDB reports its storage failing, e.g. "There was a problem with a datastore transaction:
#: Log error: IO error: kind=no storage space, message=No space left on device (os error 28)", or, when
#: an embedded store cannot even be opened, "Failed to create datastore: ... IO error: ...".
_STORAGE_FAILURE = re.compile(r"problem with (?:a|the underlying) datastore[^:]*: (?:\w+ error: )?IO error")


class ConnectionProblem(Exception):
    """Transient: reconnect and retry."""


class StorageProblem(ConnectionProblem):
    """Transient: the database's storage failed; an embedded engine must be reopened before a retry."""


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
    if _STORAGE_FAILURE.search(str(exc)):
        # Checked before the refusals below: the engine raises these as InternalError (a ServerError)
        # or RuntimeError, which would otherwise make every row of the batch look refused.
        return StorageProblem(text)
    if isinstance(exc, ServerError | SurrealError | ValueError | TypeError | RuntimeError):
        # ValueError/TypeError: the SDK could not encode a value (e.g. an integer beyond 64 bits);
        # RuntimeError: the embedded engine refused the statement.
        return StatementRejected(str(exc) or type(exc).__name__)
    return ConnectionProblem(text)
