"""Configuration problems found at start: exit code 2 and a message saying exactly what to change."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from danube_source_postgres_cdc.testing import PgCluster, make_cluster

pytestmark = pytest.mark.integration  # connector processes

SCRIPT = "from danube_source_postgres_cdc.main import main; main()"


def _run(
    tmp: Path, dsn: str, table: str = "public.present", extra: str = ""
) -> subprocess.CompletedProcess[str]:
    cfg = tmp / "cdc.toml"
    cfg.write_text(
        'danube_service_url = "http://127.0.0.1:1"\nconnector_name = "cdc-errors"\n'
        "[processing]\nmetrics_port = 0\n\n"
        f'[postgres]\ndsn = "{dsn}"\n{extra}\n'
        f'[[postgres.table_mappings]]\ntable = "{table}"\ndanube_topic = "/default/t"\n'
    )
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LOG_FORMAT": "text"},
    )


@pytest.fixture(scope="module")
def replica_cluster(pg_cluster: PgCluster) -> Any:
    """A second cluster running with wal_level = replica."""
    root = Path(tempfile.mkdtemp(prefix="danube-pg-replica-"))
    os.chmod(root, 0o755)
    cluster = make_cluster(root / "cluster", wal_level="replica")
    try:
        yield cluster
    finally:
        cluster.stop()


def test_wal_level_replica_exits_2(replica_cluster: PgCluster, tmp_path: Path) -> None:
    result = _run(tmp_path, replica_cluster.dsn())
    assert result.returncode == 2, result.stderr
    assert "set wal_level = logical in postgresql.conf" in result.stderr
    assert "restart PostgreSQL" in result.stderr


async def test_missing_table_exits_2(pg_db: Any, tmp_path: Path) -> None:
    conn = await pg_db.connect()
    await conn.execute("CREATE TABLE present (id int PRIMARY KEY)")
    await conn.close()
    result = _run(tmp_path, pg_db.dsn, table="public.absent")
    assert result.returncode == 2, result.stderr
    assert "postgres.table_mappings[0].table" in result.stderr
    assert f"table public.absent does not exist in database {pg_db.name}" in result.stderr


async def test_role_without_replication_exits_2(pg_db: Any, tmp_path: Path) -> None:
    conn = await pg_db.connect()
    await conn.execute("CREATE TABLE present (id int PRIMARY KEY)")
    await conn.execute("DROP ROLE IF EXISTS plain_user; CREATE ROLE plain_user LOGIN")
    await conn.close()
    dsn = pg_db.cluster.dsn(pg_db.name, user="plain_user")
    result = _run(tmp_path, dsn)
    assert result.returncode == 2, result.stderr
    assert 'ALTER ROLE "plain_user" WITH REPLICATION' in result.stderr


async def test_slot_with_other_plugin_exits_2(pg_db: Any, tmp_path: Path) -> None:
    conn = await pg_db.connect()
    await conn.execute("CREATE TABLE present (id int PRIMARY KEY)")
    await conn.execute("SELECT pg_create_logical_replication_slot('danube_cdc', 'test_decoding')")
    await conn.close()
    result = _run(tmp_path, pg_db.dsn)
    assert result.returncode == 2, result.stderr
    assert "exists with plugin test_decoding" in result.stderr


def test_unknown_key_exits_2(tmp_path: Path) -> None:
    result = _run(tmp_path, "postgresql://x@127.0.0.1:1/x", extra="bogus = 1")
    assert result.returncode == 2
    assert "postgres.bogus" in result.stderr
