"""ClickHouse sink test fixtures: one chdb engine directory per pytest process (chdb allows one path per
process) and a fresh database per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .clickhouse_helpers import require_chdb

_counter = itertools.count()


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_chdb()
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def ch(chdb_dir: Path) -> Iterator[tuple[Any, str, str]]:
    """(client, dsn, database): a database of its own on the process's chdb engine."""
    import clickhouse_connect

    dsn = f"chdb://{chdb_dir}"
    client = clickhouse_connect.get_client(dsn=dsn)
    db = f"t{next(_counter)}"
    client.command(f"CREATE DATABASE {db}")
    yield client, dsn, db
    client.command(f"DROP DATABASE IF EXISTS {db}")
