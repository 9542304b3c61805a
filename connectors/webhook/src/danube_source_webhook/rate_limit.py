"""A token bucket per endpoint (``[webhook.rate_limit]``): 429 with Retry-After when it is empty.

Invariant 3: a flood is pushed back to the sender instead of queueing inside the connector.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` stored; starts full."""

    def __init__(self, rate: float, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = float(capacity)
        self._tokens = float(capacity)
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def try_take(self) -> float:
        """Take one token: 0.0 when granted, else the whole seconds (>= 1) until one is available."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return float(max(1, math.ceil((1.0 - self._tokens) / self.rate)))
