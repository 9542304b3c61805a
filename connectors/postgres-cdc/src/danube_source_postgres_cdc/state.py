"""The small state table recording, per slot, whether a snapshot completed and which snapshot it was.

One row per slot: ``snapshot_completed`` turns true only in ``commit()`` once every snapshot record
was acknowledged by Danube; ``snapshot`` holds the ``pg_snapshot`` the rows were read with, so the
stream can skip transactions the snapshot already contained, also after a restart (see snapshot.py).
The table is never captured (it is not in the wal2json table filter nor in the publication).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from danube_connect_core import ConfigError

__all__ = ["SnapshotState", "StateTable"]


@dataclass(frozen=True, slots=True)
class SnapshotState:
    completed: bool
    snapshot: str | None


class StateTable:
    def __init__(self, conn: Any, table: str, slot: str, file: Path | None) -> None:
        self._conn = conn
        self._table = table
        self._slot = slot
        self._file = file

    async def ensure(self) -> None:
        try:
            await self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} ("
                " slot_name text PRIMARY KEY,"
                " snapshot_completed boolean NOT NULL DEFAULT false,"
                " snapshot text,"
                " updated_at timestamptz NOT NULL DEFAULT now())"
            )
        except asyncpg.InsufficientPrivilegeError:
            raise ConfigError(
                f"cannot create the state table {self._table}: grant CREATE on its schema to the "
                "connector's user, or point postgres.state_table at a schema it may write",
                file=self._file,
                key="postgres.state_table",
            ) from None

    async def load(self) -> SnapshotState:
        row = await self._conn.fetchrow(
            f"SELECT snapshot_completed, snapshot FROM {self._table} WHERE slot_name = $1", self._slot
        )
        if row is None:
            return SnapshotState(False, None)
        return SnapshotState(bool(row["snapshot_completed"]), row["snapshot"])

    async def begin(self, snapshot: str) -> None:
        await self._conn.execute(
            f"INSERT INTO {self._table} (slot_name, snapshot_completed, snapshot) VALUES ($1, false, $2) "
            "ON CONFLICT (slot_name) DO UPDATE SET snapshot_completed = false, snapshot = $2, "
            "updated_at = now()",
            self._slot,
            snapshot,
        )

    async def complete(self) -> None:
        await self._conn.execute(
            f"UPDATE {self._table} SET snapshot_completed = true, updated_at = now() WHERE slot_name = $1",
            self._slot,
        )

    async def reset(self) -> None:
        await self._conn.execute(f"DELETE FROM {self._table} WHERE slot_name = $1", self._slot)
