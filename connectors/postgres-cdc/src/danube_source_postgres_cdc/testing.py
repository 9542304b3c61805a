"""For tests: a private PostgreSQL 15 cluster started as the postgres user (initdb refuses root).

- :func:`missing_reason` - why a cluster cannot be started here, or None;
- :func:`private_cluster` - a cluster (wal_level=logical, wal2json) on its own port and socket dir,
  stopped and removed afterwards;
- :func:`fresh_database` - a database of its own on a cluster; its replication slots and connections
  are dropped afterwards.

The root conftest.py turns them into the ``pg_cluster`` and ``pg_db`` fixtures. Binaries come from
/usr/lib/postgresql/15/bin explicitly (another ``postgres`` may be on PATH).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from danube_connect_core.testing.conformance import SourceCase, SourceUpstream
from danube_connect_core.testing.harness import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
WAL2JSON = Path("/usr/lib/postgresql/15/lib/wal2json.so")


def missing_reason() -> str | None:
    if not (PG_BIN / "initdb").exists():
        return "PostgreSQL 15 is missing (apt-get install postgresql-15; scripts/bootstrap.sh does it)"
    if not WAL2JSON.exists():
        return (
            "wal2json is not installed (apt-get install postgresql-15-wal2json; scripts/bootstrap.sh does it)"
        )
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no postgres system user to run initdb as"
    return None


@dataclass
class PgCluster:
    """A running private cluster: ``dsn(db)`` for the superuser, ``admin`` DSN for the postgres db."""

    bin: Path
    data: Path
    socket_dir: Path
    port: int
    wal_level: str = "logical"

    def dsn(self, db: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        opts = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.socket_dir}"
            f" -c wal_level={self.wal_level} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_replication_slots=40 -c max_wal_senders=10 -c shared_buffers=64MB"
        )
        self._pg_ctl("-w", "-t", "60", "-l", str(self.data.parent / "server.log"), "-o", opts, "start")

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "stop")


def make_cluster(root: Path, wal_level: str = "logical") -> PgCluster:
    root.mkdir(parents=True, exist_ok=True)
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    sock = root / "sock"
    sock.mkdir()
    shutil.chown(sock, "postgres", "postgres")
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
         "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    cluster = PgCluster(PG_BIN, data, sock, free_port(), wal_level)
    cluster.start()
    return cluster


@contextlib.contextmanager
def private_cluster() -> Iterator[PgCluster]:
    """A started cluster in a fresh temporary directory; stopped and removed on exit."""
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


@contextlib.asynccontextmanager
async def fresh_database(cluster: PgCluster) -> AsyncIterator[PgDatabase]:
    """A new database on ``cluster``; afterwards its connections end, its replication slots are dropped
    and the database with them."""
    name = f"cdc_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(cluster.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    try:
        yield PgDatabase(cluster, name)
    finally:
        admin = await asyncpg.connect(cluster.dsn())
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            slots = await admin.fetch("SELECT slot_name FROM pg_replication_slots WHERE database = $1", name)
            for row in slots:
                await admin.execute("SELECT pg_drop_replication_slot($1)", row["slot_name"])
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


class CdcUpstream(SourceUpstream):
    """The CDC source's conformance upstream (danube_connect_core.testing.conformance): a private cluster
    (:func:`private_cluster`) with a fresh database and table ``records (i int primary key, name text)``;
    record ``i`` is one committed INSERT, acknowledged by the commit. Changes committed while no
    connector runs stay in the replication slot and are published after the restart: at least once."""

    section_name = "postgres"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._stack = contextlib.AsyncExitStack()
        self.db: PgDatabase | None = None
        self.conn: asyncpg.Connection | None = None

    async def start(self) -> None:
        reason = missing_reason()
        if reason is not None:
            if os.environ.get("CI") == "true":
                raise AssertionError(reason)
            import pytest

            pytest.skip(reason)
        cluster = await asyncio.to_thread(self._stack.enter_context, private_cluster())
        self.db = await self._stack.enter_async_context(fresh_database(cluster))
        self.conn = await self.db.connect()
        await self.conn.execute("CREATE TABLE records (i int PRIMARY KEY, name text)")

    async def stop(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None
        await self._stack.aclose()

    def section(self, topic: str) -> dict[str, Any]:
        assert self.db is not None
        return {
            "dsn": self.db.dsn,
            "max_changes_per_poll": 50,
            "poll_interval_ms": 20,
            "table_mappings": [{"table": "public.records", "danube_topic": topic}],
        }

    async def send(self, i: int) -> bool:
        assert self.conn is not None
        await self.conn.execute("INSERT INTO records VALUES ($1, $2)", i, f"n{i}")
        return True

    def received_id(self, message_payload: Any) -> int:
        return int(message_payload["after"]["i"])


CASE = SourceCase("postgres-cdc", idempotent=False, upstream_type=CdcUpstream)
