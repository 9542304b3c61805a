"""The ClickHouse sink's conformance case (danube_connect_core.testing.conformance).

:class:`ClickHouseTarget` is chdb in ``root/chdb``: table ``faults.events``, a MergeTree ordered by the
Danube position with ``non_replicated_deduplication_window`` (without it chdb ignores insert
de-duplication tokens) and the ``_danube_partition`` / ``_danube_offset`` columns
(``include_metadata``) that let the sink skip rows of a redelivery however it is re-batched. Its outage:
the store's disk fills up (tmpfs, ENOSPC).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from danube_connect_core.testing.conformance import SinkCase, SinkTarget, disk_full_outage

__all__ = ["CASE", "ClickHouseTarget"]

#: Runs statements on a chdb directory in a child process: chdb allows one engine path per process, and
#: the sink processes open the same path, so the test process never opens it itself.
_CHDB_SCRIPT = """
import json, sys, clickhouse_connect
client = clickhouse_connect.get_client(dsn=sys.argv[1])
result = None
for sql in sys.argv[2:]:
    result = client.query(sql).result_rows if sql.startswith("SELECT") else client.command(sql)
print(json.dumps([list(r) for r in result] if isinstance(result, list) else None))
"""


class ClickHouseTarget(SinkTarget):
    """chdb in ``root/chdb``, table ``faults.events``."""

    section_name = "clickhouse"
    ddl = """CREATE TABLE faults.events (
    i Int64,
    name String,
    v Array(Float64),
    _danube_partition Int32,
    _danube_offset Int64
) ENGINE = MergeTree ORDER BY (_danube_partition, _danube_offset)
SETTINGS non_replicated_deduplication_window = 1000"""

    @property
    def dsn(self) -> str:
        return f"chdb://{self.root / 'chdb'}"

    def chdb(self, *sql: str) -> Any:
        """Run ``sql`` statements in a child process; the last one's rows (SELECT) or None."""
        done = subprocess.run(
            [sys.executable, "-c", _CHDB_SCRIPT, self.dsn, *sql],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"chdb statements failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    async def start(self) -> None:
        await asyncio.to_thread(self.chdb, "CREATE DATABASE faults", self.ddl)

    def section(self) -> dict[str, Any]:
        return {"url": self.dsn, "database": "faults"}

    def mapping(self) -> dict[str, Any]:
        return {"table": "events", "include_metadata": True}

    def bad_records(self) -> list[Any]:
        return [["not", "an", "object"], "a string"]

    async def stored_ids(self) -> list[int]:
        rows = await asyncio.to_thread(self.chdb, "SELECT i FROM faults.events")
        return [int(r[0]) for r in rows]


CASE = SinkCase(
    "clickhouse", idempotent=True, target_type=ClickHouseTarget, outage=disk_full_outage(ClickHouseTarget)
)
