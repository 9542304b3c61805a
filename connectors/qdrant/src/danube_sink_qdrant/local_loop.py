"""A private event loop on its own thread, for the client's local mode.

Local mode runs the Qdrant engine inside the client: its "async" methods do their work (SQLite writes,
one commit per point) synchronously. Run on the connector's loop they would stall message intake, acks
and the /health server for the length of every upsert, so they run on this loop's thread instead; the
caller awaits the result. The same AsyncQdrantClient methods are called as for a server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LocalLoop"]

T = TypeVar("T")


class LocalLoop:
    """Runs coroutines on a dedicated thread; :meth:`run` is awaited from any other loop."""

    def __init__(self, name: str = "qdrant-local") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
