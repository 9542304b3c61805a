"""The SurrealDB sink's conformance case (danube_connect_core.testing.conformance).

:class:`SurrealDbTarget` is an embedded SurrealDB store (surrealkv) in ``root/surreal``; records get
their id from the message id (the default), so a redelivery rewrites nothing (``INSERT IGNORE``). Its
outage: the store's disk fills up (tmpfs, ENOSPC).
"""

from __future__ import annotations

from typing import Any

from danube_connect_core.testing.conformance import SinkCase, SinkTarget, disk_full_outage

__all__ = ["CASE", "SurrealDbTarget"]


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
