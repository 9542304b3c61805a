"""Bounded retry of one unary operation on transient gRPC failures.

The loop is :func:`danube_connect_core.resilience.retry`; this module only sorts gRPC statuses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from danube_connect_core.resilience import RetriesExhausted, retry

from .errors import (
    RETRYABLE_CODES,
    ClientClosed,
    NonRetryableError,
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

    async def attempt() -> T:
        # Sorts a failed RPC into "raise now" (translated) and "transient" (re-raised for the loop).
        try:
            return await operation()
        except grpc.aio.AioRpcError as err:
            code = err.code()
            if code == grpc.StatusCode.CANCELLED:
                if closing is None or closing():
                    raise ClientClosed(f"{what}: cancelled (client closing)", code=code) from err
            elif code not in retry_codes:
                raise NonRetryableError(f"{what} failed: {describe_rpc_error(err)}", code=code) from err
            raise

    def on_retry(n: int, err: grpc.aio.AioRpcError, delay: float) -> None:
        if log is not None:
            log.warning(
                "%s: %s; retry %d/%d in %.2fs", what, describe_rpc_error(err), n, policy.max_retries, delay
            )

    def exhausted(n: int, err: grpc.aio.AioRpcError) -> RetriesExhausted:
        return RetriesExhausted(
            f"{what} failed after {n} attempts: {describe_rpc_error(err)}",
            attempts=n,
            last=err,
            code=err.code(),
        )

    return await retry(
        attempt,
        retry_on=grpc.aio.AioRpcError,
        max_retries=policy.max_retries,
        delay=lambda n, _err: policy.backoff_s(n),
        exhausted=exhausted,
        on_retry=on_retry,
    )
