"""One SurrealDB connection (server or embedded engine) with reconnects and classified failures."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from surrealdb import AsyncSurreal

from danube_sink_surrealdb.failures import ConnectionProblem, StatementRejected, StorageProblem, classify
from danube_sink_surrealdb.url import SurrealUrl

__all__ = ["SurrealDatabase"]

log = logging.getLogger("danube_connect.surrealdb")


class SurrealDatabase:
    """A lazily (re)connected SurrealDB session: ``use(namespace, database)`` and optional ``signin``.

    Every call raises :class:`ConnectionProblem` (the connection is dropped and re-established by the
    next call) or :class:`StatementRejected`. An embedded engine is opened once and kept: it cannot lose
    its connection, and its store must not be opened twice by one process. The one exception is a
    :class:`StorageProblem` (a full or read-only disk): the engine's commit log stays broken after it, so
    the engine is closed and the next call opens the store again (retried until the disk is usable).
    """

    def __init__(
        self,
        url: SurrealUrl,
        namespace: str,
        database: str,
        username: str | None,
        password: str | None,
        timeout_s: float,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.database = database
        self._username = username
        self._password = password
        self.timeout_s = timeout_s
        self._db: Any = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._db is not None

    async def connect(self) -> None:
        """Open the connection if needed. Raises ConnectionProblem (or StatementRejected for bad auth)."""
        if self._db is not None:
            return
        async with self._lock:
            if self._db is not None:
                return
            db: Any = None
            try:
                # Inside the try: an embedded store is opened here, and that fails on a full disk.
                db = AsyncSurreal(self.url.sdk_url)
                async with asyncio.timeout(self.timeout_s):
                    if not self.url.sdk_url.startswith(("http://", "https://")):
                        await db.connect()  # the HTTP client opens a request per call instead
                    if not self.url.embedded and self._username is not None:
                        await db.signin({"username": self._username, "password": self._password or ""})
                    await db.use(self.namespace, self.database)
            except asyncio.CancelledError:
                if _being_cancelled():
                    raise
                if db is not None:
                    await _close_quietly(db)
                raise ConnectionProblem("connection closed while connecting") from None
            except Exception as exc:
                if db is not None:
                    await _close_quietly(db)
                raise classify_connect(exc) from exc
            self._db = db
            log.info("connected to SurrealDB at %s (%s/%s)", self.url.display, self.namespace, self.database)

    async def query(self, sql: str, variables: dict[str, Any] | None = None) -> Any:
        """Run one SurrealQL query and return the result of its (single) statement."""
        await self.connect()
        db = self._db
        try:
            async with asyncio.timeout(self.timeout_s):
                return await db.query(sql, variables or {})
        except asyncio.CancelledError:
            # The WebSocket client cancels the waiting future when its connection closes.
            if _being_cancelled():
                raise
            await self._drop(db)
            raise ConnectionProblem("connection to SurrealDB closed during the query") from None
        except Exception as exc:
            kind = classify(exc)
            if isinstance(kind, StorageProblem) and self.url.embedded:
                await self._reopen_later(db, kind)
            elif isinstance(kind, ConnectionProblem):
                await self._drop(db)
            raise kind from exc

    async def ping(self) -> None:
        """A trivial query; raises ConnectionProblem when the database does not answer."""
        try:
            await self.query("RETURN true")
        except StatementRejected as exc:
            raise ConnectionProblem(f"health query refused: {exc}") from exc

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await _close_quietly(db)

    async def _reopen_later(self, db: Any, problem: StorageProblem) -> None:
        """Close the embedded engine after its storage failed; the next call opens the store again."""
        if db is not self._db:
            return
        self._db = None
        log.warning(
            "SurrealDB store %s failed (%s); it is reopened by the next call", self.url.display, problem
        )
        await _close_quietly(db)

    async def _drop(self, db: Any) -> None:
        if self.url.embedded or db is not self._db:
            return
        self._db = None
        await _close_quietly(db)


def classify_connect(exc: BaseException) -> ConnectionProblem | StatementRejected:
    """While connecting everything is a connection problem (a refused sign-in too: it may be fixed)."""
    kind = classify(exc)
    if isinstance(kind, StatementRejected):
        return ConnectionProblem(f"cannot open the session: {kind}")
    return kind


def _being_cancelled() -> bool:
    """True when our own task is being cancelled (not a future cancelled by a closing connection)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _close_quietly(db: Any) -> None:
    try:
        async with asyncio.timeout(5):
            await db.close()
    except asyncio.CancelledError:
        if _being_cancelled():
            raise
    except Exception:  # closing a broken connection may fail in many ways; it is gone either way
        pass
