"""Bounded retry of one unary operation on transient gRPC failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from .backoff import backoff_delay_s
from .errors import (
    RETRYABLE_CODES,
    ClientClosed,
    NonRetryableError,
    RetriesExhausted,
    describe_rpc_error,
)
from .options import RetryPolicy
from .ratelog import RateLimitedLog

T = TypeVar("T")


async def call_with_retry(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    what: str,
    log: RateLimitedLog | None = None,
    retry_codes: frozenset[grpc.StatusCode] = RETRYABLE_CODES,
    closing: Callable[[], bool] | None = None,
) -> T:
    """Run ``operation`` until it succeeds, retrying on ``retry_codes`` at most ``policy.max_retries`` times.

    Raises :class:`RetriesExhausted` when the retries run out and :class:`NonRetryableError` at once for
    any other status. Non-gRPC exceptions propagate unchanged.

    CANCELLED raises :class:`ClientClosed` when the client is closing (``closing()`` is true, or no
    ``closing`` was given). Otherwise the call was cancelled by the server or the transport while this
    client is open — seen when a broker sheds thousands of concurrent calls — and is retried like
    UNAVAILABLE; give ``closing`` only for operations that are safe to repeat.
    """
    attempt = 0
    while True:
        try:
            return await operation()
        except grpc.aio.AioRpcError as err:
            code = err.code()
            if code == grpc.StatusCode.CANCELLED:
                if closing is None or closing():
                    raise ClientClosed(f"{what}: cancelled (client closing)", code=code) from err
            elif code not in retry_codes:
                raise NonRetryableError(f"{what} failed: {describe_rpc_error(err)}", code=code) from err
            if attempt >= policy.max_retries:
                raise RetriesExhausted(
                    f"{what} failed after {attempt + 1} attempts: {describe_rpc_error(err)}",
                    attempts=attempt + 1,
                    code=code,
                ) from err
            delay = backoff_delay_s(policy, attempt)
            if log is not None:
                log.warning(
                    "%s: %s; retry %d/%d in %.2fs",
                    what,
                    describe_rpc_error(err),
                    attempt + 1,
                    policy.max_retries,
                    delay,
                )
            attempt += 1
            await asyncio.sleep(delay)
