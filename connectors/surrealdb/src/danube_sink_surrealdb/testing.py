"""The SurrealDB sink's conformance case (danube_connect_core.testing.conformance).

:class:`SurrealDbTarget` is an embedded SurrealDB store (surrealkv) in ``root/surreal``; records get
their id from the message id (the default), so a redelivery rewrites nothing (``INSERT IGNORE``). Its
outage: the store's disk fills up (tmpfs, ENOSPC).

:func:`surrealkv_config` runs a given SurrealDB sink TOML (``example_e2e/surrealdb-sink-connector.toml`` in
the end to end tests and ``bench/e2e_bench.py``) on an embedded store instead of a SurrealDB server.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from danube_connect_core.testing.conformance import SinkCase, SinkTarget, disk_full_outage
from danube_connect_core.testing.toml_writer import to_toml

__all__ = ["CASE", "SurrealDbTarget", "surrealkv_config"]


def surrealkv_config(example: Path, store: Path, *, query_api: bool = False) -> str:
    """The SurrealDB sink TOML ``example`` with ``[surrealdb] url`` pointing at an embedded ``surrealkv``
    store in ``store``, every other value kept; ``query_api`` switches on the read-only query API on a port
    the OS picks (logged as ``query_api_port``; the store belongs to the sink process, so other processes
    read it through that API). Returns the TOML text. Raises KeyError when ``example`` has no
    ``[surrealdb]`` table."""
    document = tomllib.loads(example.read_text())
    document["surrealdb"]["url"] = f"surrealkv://{store}"
    if query_api:
        document["surrealdb"]["query_api"] = {"enabled": True, "port": 0}
    return to_toml(document)


class SurrealDbTarget(SinkTarget):
    """surrealkv in ``root/surreal``, namespace and database ``faults``, table ``faults``."""

    section_name = "surrealdb"
    table = "faults"

    def section(self) -> dict[str, Any]:
        return {"url": f"surrealkv://{self.root / 'surreal'}", "namespace": "faults", "database": "faults"}

    def mapping(self) -> dict[str, Any]:
        return {"table": self.table}

    def bad_records(self) -> list[Any]:
        # SurrealDB stores any JSON value; what it cannot hold is an integer beyond 64 bits.
        return [{"i": 2**70, "name": "too big"}, {"name": "deep", "v": [1, {"x": -(2**65)}]}]

    async def stored_ids(self) -> list[int]:
        from surrealdb import AsyncSurreal

        if not (self.root / "surreal").exists():
            return []
        db: Any = AsyncSurreal(f"surrealkv://{self.root / 'surreal'}")
        await db.connect()
        try:
            await db.use("faults", "faults")
            rows = await db.query(f"SELECT VALUE i FROM `{self.table}`")
        finally:
            await db.close()
        return [int(i) for i in rows]


CASE = SinkCase(
    "surrealdb", idempotent=True, target_type=SurrealDbTarget, outage=disk_full_outage(SurrealDbTarget)
)
