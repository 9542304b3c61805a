"""The Qdrant sink's conformance case (danube_connect_core.testing.conformance).

:class:`QdrantTarget` is Qdrant local mode in ``root/qdrant``: collection ``faults`` auto-created (3-d
Euclid vectors from ``v``); point ids are UUIDv5 of the message id (the default), so a redelivery
overwrites its point. Its outage: the store's disk fills up (tmpfs, ENOSPC).
"""

from __future__ import annotations

import asyncio
from typing import Any

from danube_connect_core.testing.conformance import SinkCase, SinkTarget, disk_full_outage

__all__ = ["CASE", "QdrantTarget"]


class QdrantTarget(SinkTarget):
    """Qdrant local mode in ``root/qdrant``, collection ``faults``."""

    section_name = "qdrant"
    collection = "faults"

    def section(self) -> dict[str, Any]:
        return {"url": f"path:{self.root / 'qdrant'}"}

    def mapping(self) -> dict[str, Any]:
        return {"collection": self.collection, "vector_field": "v", "dimension": 3, "distance": "Euclid"}

    def bad_records(self) -> list[Any]:
        return [{"i": -1, "name": "without a vector"}, {"i": -2, "name": "short", "v": [1.0]}, "a string"]

    async def stored_ids(self) -> list[int]:
        return await asyncio.to_thread(self._read)

    def _read(self) -> list[int]:
        from qdrant_client import QdrantClient

        if not (self.root / "qdrant").exists():
            return []
        client = QdrantClient(path=str(self.root / "qdrant"))  # takes the directory's lock
        try:
            if not client.collection_exists(self.collection):
                return []
            out: list[int] = []
            offset: Any = None
            while True:
                points, offset = client.scroll(
                    self.collection, limit=5000, offset=offset, with_payload=["i"], with_vectors=False
                )
                out += [int(p.payload["i"]) for p in points if p.payload is not None]
                if offset is None:
                    return out
        finally:
            client.close()  # releases the lock for the next sink process


CASE = SinkCase("qdrant", idempotent=True, target_type=QdrantTarget, outage=disk_full_outage(QdrantTarget))
