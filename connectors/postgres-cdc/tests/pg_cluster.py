"""Starting a private PostgreSQL 15 cluster as the postgres user (initdb refuses root)."""

from __future__ import annotations

import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    cluster = PgCluster(PG_BIN, data, sock, _free_port(), wal_level)
    cluster.start()
    return cluster
