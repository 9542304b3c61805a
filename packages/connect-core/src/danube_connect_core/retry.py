"""Exponential backoff with jitter for Retryable errors."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from danube_connect_core.config import RetrySettings
from danube_connect_core.errors import Retryable

__all__ = ["RetriesExhausted", "backoff_delay", "retry_retryable"]

T = TypeVar("T")


class RetriesExhausted(Exception):
    """The retry budget ran out; ``last`` is the final Retryable."""

    def __init__(self, attempts: int, last: Retryable) -> None:
        super().__init__(f"gave up after {attempts} attempts: {last}")
        self.attempts = attempts
        self.last = last


def backoff_delay(retry: int, settings: RetrySettings, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (0-based).

    ``d = min(max_backoff, base * 2**retry)``, then "equal jitter": a uniform draw in ``[d/2, d]`` so
    instances that failed together do not retry together. A ``retry_after`` hint raises the floor
    (capped by ``max_backoff_ms``).
    """
    cap = settings.max_backoff_ms / 1000
    d = min(cap, settings.retry_backoff_ms / 1000 * (2**retry))
    delay = random.uniform(d / 2, d)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


async def retry_retryable(
    operation: Callable[[], Awaitable[T]],
    settings: RetrySettings,
    *,
    on_retry: Callable[[int, Retryable, float], None] | None = None,
) -> T:
    """Run ``operation``; on Retryable wait and try again, at most ``settings.max_retries`` more times.

    Any other exception propagates at once. When the budget is exhausted raises RetriesExhausted.
    ``on_retry(retry_number, error, delay)`` is called before each wait (metrics, health, logs).
    """
    retry = 0
    while True:
        try:
            return await operation()
        except Retryable as exc:
            if retry >= settings.max_retries:
                raise RetriesExhausted(retry + 1, exc) from exc
            delay = backoff_delay(retry, settings, exc.retry_after)
            if on_retry is not None:
                on_retry(retry + 1, exc, delay)
            await asyncio.sleep(delay)
            retry += 1
