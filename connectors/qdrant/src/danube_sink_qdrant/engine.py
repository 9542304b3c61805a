"""The Qdrant client the sink talks to: AsyncQdrantClient for a server, the same client in local mode.

Every call goes through :meth:`QdrantEngine.call`; in local mode it runs on a private thread loop (see
:mod:`danube_sink_qdrant.local_loop`). Local mode on a path holds an exclusive file lock on the directory
(one process at a time); the kernel releases it when the process dies, also on SIGKILL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from qdrant_client import AsyncQdrantClient, models

from danube_sink_qdrant.local_loop import LocalLoop
from danube_sink_qdrant.location import QdrantLocation
from danube_sink_qdrant.points import PointData

__all__ = ["QdrantEngine"]

T = TypeVar("T")


class QdrantEngine:
    def __init__(self, location: QdrantLocation, api_key: str | None, timeout_s: float) -> None:
        self.location = location
        self._api_key = api_key
        self._timeout = max(1, round(timeout_s))
        self._client: AsyncQdrantClient | None = None
        self._loop: LocalLoop | None = LocalLoop() if location.local else None
        self._opening = asyncio.Lock()  # one client only: local mode locks its directory

    async def open(self) -> None:
        """Create the client (local mode: opens and locks the storage; raises RuntimeError if locked)."""
        async with self._opening:
            if self._client is None:
                self._client = await self._run(self._make())

    async def _make(self) -> AsyncQdrantClient:
        loc = self.location

        if loc.memory:
            return AsyncQdrantClient(location=":memory:")
        if loc.path is not None:
            return AsyncQdrantClient(path=loc.path)
        return AsyncQdrantClient(
            url=loc.url, api_key=self._api_key, timeout=self._timeout, check_compatibility=False
        )

    async def call(self, fn: Callable[[AsyncQdrantClient], Awaitable[T]]) -> T:
        if self._client is None:
            await self.open()
        client = self._client
        assert client is not None

        async def go() -> T:
            return await fn(client)

        return await self._run(go())

    async def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is not None:
            return await self._loop.run(coro)
        return await coro

    # -- the operations the sink uses ---------------------------------------------------------------

    async def vector_sizes(self, collection: str) -> dict[str, int] | None:
        """Vector name (``""`` = unnamed) -> size of an existing collection, None when it does not exist."""

        async def read(c: AsyncQdrantClient) -> dict[str, int] | None:
            if not await c.collection_exists(collection):
                return None
            info = await c.get_collection(collection)
            vectors = info.config.params.vectors
            if isinstance(vectors, models.VectorParams):
                return {"": vectors.size}
            return {name: p.size for name, p in (vectors or {}).items()}

        return await self.call(read)

    async def create_collection(self, collection: str, sizes: dict[str, int], distance: str) -> None:
        dist = models.Distance(distance)
        config: models.VectorParams | dict[str, models.VectorParams]
        if set(sizes) == {""}:
            config = models.VectorParams(size=sizes[""], distance=dist)
        else:
            config = {name: models.VectorParams(size=n, distance=dist) for name, n in sizes.items()}

        async def create(c: AsyncQdrantClient) -> None:
            await c.create_collection(collection, vectors_config=config)

        await self.call(create)

    async def upsert(self, collection: str, points: list[PointData]) -> None:
        """Upsert and wait until applied (``wait=True``): the runtime acks only after (invariant 1)."""
        structs = [models.PointStruct(id=p.id, vector=_vector(p), payload=p.payload) for p in points]

        async def up(c: AsyncQdrantClient) -> None:
            await c.upsert(collection, structs, wait=True)

        await self.call(up)

    async def ping(self) -> None:
        async def get(c: AsyncQdrantClient) -> None:
            await c.get_collections()

        await self.call(get)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await self._run(client.close())
            finally:
                if self._loop is not None:
                    self._loop.close()
        elif self._loop is not None:
            self._loop.close()


def _vector(point: PointData) -> Any:
    # PointStruct's vector type is a wide union; ours is one of its members (list, or name -> list).
    return point.vector
