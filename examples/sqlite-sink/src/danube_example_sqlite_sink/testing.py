"""The example SQLite sink's conformance case (danube_connect_core.testing.conformance).

:class:`SqliteTarget` is the database file ``root/sink.db`` with table ``records`` (columns ``i`` and
``name``); :meth:`SqliteTarget.bad_records` are records the sink must dead-letter. Its outage
(:func:`locked_database`): another process (the test) holds the database's exclusive lock, so every
write of the sink waits its ``busy_timeout_ms`` and fails with "database is locked" until the lock is
released.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from danube_connect_core.testing.conformance import Outage, SinkCase, SinkTarget

__all__ = ["CASE", "DatabaseLock", "SqliteTarget", "locked_database"]


class SqliteTarget(SinkTarget):
    """``root/sink.db``, table ``records``."""

    section_name = "sqlite"
    table = "records"

    @property
    def db_path(self) -> Path:
        return self.root / "sink.db"

    def section(self) -> dict[str, Any]:
        # A short busy timeout: during the outage each write fails fast and is retried by the runtime.
        return {"path": str(self.db_path), "busy_timeout_ms": 200}

    def mapping(self) -> dict[str, Any]:
        return {"table": self.table, "columns": ["i", "name"]}

    def bad_records(self) -> list[Any]:
        return [
            {"name": "without i"},
            ["not", "an", "object"],
            {"i": {"nested": 1}, "name": "i is an object"},
            "a string",
        ]

    async def stored_ids(self) -> list[int]:
        return await asyncio.to_thread(self._read)

    def _read(self) -> list[int]:
        if not self.db_path.exists():
            return []
        db = sqlite3.connect(self.db_path, timeout=30)
        try:
            return [int(i) for (i,) in db.execute(f"SELECT i FROM {self.table}")]
        finally:
            db.close()


class DatabaseLock:
    """An exclusive lock on a SQLite database, taken by this process: no other connection can write
    (or read) until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    async def acquire(self) -> None:
        await asyncio.to_thread(self._acquire)

    def _acquire(self) -> None:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("BEGIN EXCLUSIVE")  # waits (up to 30 s) for a write in progress to commit
        self._db = db

    async def release(self) -> None:
        await asyncio.to_thread(self._release)

    def _release(self) -> None:
        if self._db is not None:
            self._db.execute("ROLLBACK")
            self._db.close()
            self._db = None


@contextlib.asynccontextmanager
async def locked_database(root: Path) -> AsyncIterator[tuple[SinkTarget, Outage]]:
    """A :class:`SqliteTarget` under ``root`` and the outage: this process holds its exclusive lock."""
    target = SqliteTarget(root)
    lock = DatabaseLock(target.db_path)
    try:
        yield (
            target,
            Outage("another process holds the database's exclusive lock", lock.acquire, lock.release),
        )
    finally:
        await lock.release()


CASE = SinkCase("example-sqlite", idempotent=True, target_type=SqliteTarget, outage=locked_database)
