"""De-duplication of webhook deliveries on a request header (``Idempotency-Key``, ``webhook-id``...).

A key whose first request was acknowledged by the broker within the window answers the same 2xx again
without publishing. A key whose first request is still in flight makes the repeat wait for its outcome; a
failed first attempt (4xx, 5xx, timeout) is forgotten, so the sender's retry publishes. Memory is bounded
(invariant 3): at most ``max_entries`` keys, the oldest forgotten first, each for ``window_s`` at most.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Claimed", "IdempotencyStore", "Replay"]


@dataclass(frozen=True, slots=True)
class Replay:
    """The remembered answer of an earlier, acknowledged request with the same key."""

    status: int
    body: dict[str, Any]


@dataclass(slots=True)
class _Entry:
    done: asyncio.Future[Replay | None]
    replay: Replay | None = None
    expires_at: float = float("inf")


class Claimed:
    """This request owns the key: call :meth:`succeeded` after the broker's ack, else :meth:`failed`."""

    def __init__(self, store: IdempotencyStore, key: str, entry: _Entry) -> None:
        self._store = store
        self._key = key
        self._entry = entry
        self._settled = False

    def succeeded(self, status: int, body: dict[str, Any]) -> None:
        if self._settled:
            return
        self._settled = True
        replay = Replay(status, body)
        self._entry.replay = replay
        self._entry.expires_at = self._store.clock() + self._store.window_s
        if not self._entry.done.done():
            self._entry.done.set_result(replay)

    def failed(self) -> None:
        if self._settled:
            return
        self._settled = True
        if self._store._entries.get(self._key) is self._entry:
            del self._store._entries[self._key]
        if not self._entry.done.done():
            self._entry.done.set_result(None)


class IdempotencyStore:
    def __init__(
        self, window_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def claim(self, key: str) -> Replay | Claimed:
        """The earlier answer for ``key``, or the ownership of it.

        Waits while an earlier request with the same key is in flight (the caller bounds the wait, e.g.
        with its request deadline).
        """
        while True:
            now = self.clock()
            self._expire(now)
            entry = self._entries.get(key)
            if entry is None:
                entry = _Entry(asyncio.get_running_loop().create_future())
                self._entries[key] = entry
                self._bound()
                return Claimed(self, key, entry)
            if entry.replay is not None:
                if entry.expires_at > now:
                    return entry.replay
                del self._entries[key]
                continue
            await asyncio.shield(entry.done)

    def _expire(self, now: float) -> None:
        # Entries are kept in insertion order; completed ones expire window_s after completion, so the
        # front is (nearly) the oldest: drop expired ones from the front.
        while self._entries:
            first_key, first = next(iter(self._entries.items()))
            if first.replay is None or first.expires_at > now:
                break
            del self._entries[first_key]

    def _bound(self) -> None:
        while len(self._entries) > self.max_entries:
            _, entry = self._entries.popitem(last=False)
            if entry.replay is None and not entry.done.done():
                entry.done.set_result(None)  # a waiter retries and claims it itself
