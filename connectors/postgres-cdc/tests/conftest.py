"""A private PostgreSQL 15 cluster (wal_level=logical, wal2json) for the session, a fresh database per test.

initdb refuses to run as root, so the cluster is created and started as the ``postgres`` user
(``runuser -u postgres --``) in a directory it owns, on its own port and unix socket directory. The
binaries are taken from /usr/lib/postgresql/15/bin explicitly (another ``postgres`` may be on PATH).
When PostgreSQL or wal2json is missing the tests are skipped with the reason, except under CI=true,
where that is a failure.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

# The tests import their helpers module by name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))

from pg_cluster import PgCluster, make_cluster, missing_reason


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    reason = missing_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL tests cannot run: {reason}")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="danube-pg-"))
    os.chmod(root, 0o755)
    cluster = make_cluster(root / "cluster")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


_counter = itertools.count(1)


@dataclass
class PgDatabase:
    cluster: PgCluster
    name: str

    @property
    def dsn(self) -> str:
        return self.cluster.dsn(self.name)

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)


@pytest_asyncio.fixture
async def pg_db(pg_cluster: PgCluster) -> AsyncIterator[PgDatabase]:
    """A fresh database; its replication slots are dropped afterwards."""
    name = f"cdc_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(pg_cluster.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    yield PgDatabase(pg_cluster, name)
    admin = await asyncpg.connect(pg_cluster.dsn())
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        for row in await admin.fetch("SELECT slot_name FROM pg_replication_slots WHERE database = $1", name):
            await admin.execute("SELECT pg_drop_replication_slot($1)", row["slot_name"])
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
