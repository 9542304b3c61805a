"""Rate-limited logging, so an absent broker yields a few lines per second, not thousands."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """A token bucket in front of a logger: at most ``burst`` lines at once, ``per_second`` on average.

    Suppressed lines are counted and the count is appended to the next line that gets through, so nothing
    is silently hidden.
    """

    __slots__ = ("_burst", "_last", "_logger", "_rate", "_suppressed", "_tokens")

    def __init__(self, logger: logging.Logger, per_second: float = 1.0, burst: int = 3) -> None:
        self._logger = logger
        self._rate = per_second
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._suppressed = 0

    def log(self, level: int, msg: str, *args: object) -> bool:
        """Log ``msg % args`` if the budget allows; returns whether it was emitted."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            self._suppressed += 1
            return False
        self._tokens -= 1.0
        if self._suppressed:
            msg = msg + " (%d similar messages suppressed)"
            args = (*args, self._suppressed)
            self._suppressed = 0
        self._logger.log(level, msg, *args)
        return True

    def warning(self, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, msg, *args)

    def info(self, msg: str, *args: object) -> bool:
        return self.log(logging.INFO, msg, *args)
