"""A sink batch: size, age and idle triggers, plus the broker's in-flight window.

The broker stops delivering on a partition once ``max_unacked_messages`` of its messages are unacked; all
of those sit in this batch, so waiting for more can only wait for the timer. The batch therefore reports
itself due once it holds a full window for every partition it has seen (conservative: it may flush a
little early, never late), and after ``idle`` without a new message.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")


class Batcher(Generic[T]):
    """Accumulates items; :meth:`due` says why it should be flushed now, :meth:`deadline` when it will."""

    def __init__(
        self,
        *,
        max_size: int,
        max_age_s: float,
        idle_s: float,
        window: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_size = max_size
        self.max_age_s = max_age_s
        self.idle_s = idle_s
        self.window = window
        self._clock = clock
        self._items: list[T] = []
        self._per_partition: Counter[int] = Counter()
        self._first_at = 0.0
        self._last_at = 0.0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T, partition: int = 0) -> None:
        now = self._clock()
        if not self._items:
            self._first_at = now
        self._last_at = now
        self._items.append(item)
        self._per_partition[partition] += 1

    def due(self) -> str | None:
        """The trigger that makes the batch due ("size", "window", "time", "idle"), or None."""
        if not self._items:
            return None
        if len(self._items) >= self.max_size:
            return "size"
        if self.window is not None and all(n >= self.window for n in self._per_partition.values()):
            return "window"
        now = self._clock()
        if now - self._first_at >= self.max_age_s:
            return "time"
        if now - self._last_at >= self.idle_s:
            return "idle"
        return None

    def deadline(self) -> float | None:
        """The clock time at which the time or idle trigger fires (None when empty)."""
        if not self._items:
            return None
        return min(self._first_at + self.max_age_s, self._last_at + self.idle_s)

    def take(self) -> list[T]:
        items, self._items = self._items, []
        self._per_partition.clear()
        return items
