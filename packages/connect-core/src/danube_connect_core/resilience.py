"""Backoff, retry and the error of giving up: the one home of the SDK's resilience policy.

Everything that waits before trying again uses :func:`equal_jitter` (the broker client's reconnects and
RPC retries, the runtimes' retries of Retryable errors, a sink waiting for its topic, an MQTT reconnect);
everything that gives up raises :class:`RetriesExhausted`.

Failure semantics:

- :func:`retry` runs an operation, retries the exceptions it is told are transient at most
  ``max_retries`` times with a backoff, and then raises :class:`RetriesExhausted` (chained to the last
  error). Any other exception propagates at once, unchanged.
- :func:`retry_retryable` is :func:`retry` for connector work: it retries :class:`~.errors.Retryable`
  per ``[retry]`` and honours the error's ``retry_after`` hint.

This module imports no broker code, so the configuration and the client can both depend on it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from danube_connect_core.errors import DanubeError, Retryable

if TYPE_CHECKING:
    import grpc

    from danube_connect_core.config import RetrySettings

__all__ = ["RetriesExhausted", "backoff_delay", "equal_jitter", "retry", "retry_retryable"]

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

#: 2**32 times any base already exceeds every sane cap; bounding the exponent avoids huge integers.
_MAX_EXPONENT = 32


class RetriesExhausted(DanubeError):
    """A transient failure outlasted its retry budget: ``attempts`` tries in total, ``last`` the final error.

    One class for every retry loop of the SDK. It is a :class:`~.errors.DanubeError` so that code around
    broker calls (``except DanubeError``) also sees a broker that stayed unreachable; ``code`` is the last
    gRPC status when the failure came from the broker. Trying again later is safe and may succeed; the
    runtimes report it as unhealthy and exit without acknowledging what they did not write.
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        last: BaseException | None = None,
        code: grpc.StatusCode | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.attempts = attempts
        self.last = last


def equal_jitter(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): a uniform draw in ``[d/2, d]``.

    ``d = min(cap_s, base_s * 2**attempt)``. The random half spreads the retries of instances that failed
    together (many clients after a broker restart) while the floor keeps a flapping peer from being
    hammered in a tight loop ("equal jitter").
    """
    d = min(cap_s, base_s * (1 << min(max(attempt, 0), _MAX_EXPONENT)))
    return (rng or random).uniform(d / 2, d)


def backoff_delay(retry: int, settings: RetrySettings, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (0-based) under ``[retry]``.

    :func:`equal_jitter` from ``retry_backoff_ms`` capped at ``max_backoff_ms``. A ``retry_after`` hint
    (an HTTP Retry-After, say) raises the floor, itself capped by ``max_backoff_ms``.
    """
    cap = settings.max_backoff_ms / 1000
    delay = equal_jitter(retry, settings.retry_backoff_ms / 1000, cap)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    retry_on: type[E],
    max_retries: int,
    delay: Callable[[int, E], float],
    exhausted: Callable[[int, E], RetriesExhausted],
    on_retry: Callable[[int, E, float], None] | None = None,
) -> T:
    """Run ``operation``; on ``retry_on`` wait ``delay(retry, error)`` seconds and try again.

    At most ``max_retries`` retries after the first try; then raises ``exhausted(attempts, last_error)``
    chained to the last error. Any other exception propagates at once. ``on_retry(retry_number, error,
    delay)`` (1-based) is called before each wait, for logs, metrics and health.
    """
    attempt = 0
    while True:
        try:
            return await operation()
        except retry_on as exc:
            if attempt >= max_retries:
                raise exhausted(attempt + 1, exc) from exc
            wait = delay(attempt, exc)
            if on_retry is not None:
                on_retry(attempt + 1, exc, wait)
            await asyncio.sleep(wait)
            attempt += 1


async def retry_retryable(
    operation: Callable[[], Awaitable[T]],
    settings: RetrySettings,
    *,
    on_retry: Callable[[int, Retryable, float], None] | None = None,
) -> T:
    """Run connector work, retrying :class:`~.errors.Retryable` per ``[retry]`` (see :func:`retry`).

    Raises :class:`RetriesExhausted` (``last`` is the final Retryable) when the budget runs out; any other
    exception (InvalidData, Fatal, ...) propagates at once.
    """
    return await retry(
        operation,
        retry_on=Retryable,
        max_retries=settings.max_retries,
        delay=lambda n, exc: backoff_delay(n, settings, exc.retry_after),
        exhausted=lambda n, exc: RetriesExhausted(f"gave up after {n} attempts: {exc}", attempts=n, last=exc),
        on_retry=on_retry,
    )
