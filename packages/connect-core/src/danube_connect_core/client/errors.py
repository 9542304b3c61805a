"""Client errors and the classification of gRPC status codes (docs/wire-contract.md §2, "Status codes").

Every failure the client raises is a :class:`DanubeError` (defined in :mod:`danube_connect_core.errors`):

- :class:`RetriesExhausted` (the SDK's one "gave up" error, from :mod:`danube_connect_core.resilience`): a
  retryable condition (broker unavailable, deadline exceeded, overloaded, or a producer the broker forgot)
  outlasted the configured :class:`~.options.RetryPolicy`. Calling again later is safe and may succeed.
- :class:`NonRetryableError`: the broker refused the request for a reason retrying cannot fix (bad topic
  name, permission denied, dispatch-strategy mismatch, bad credentials, ...). Fix the cause, do not retry.
- :class:`ClientClosed`: the producer, consumer or client was closed.

CANCELLED is not in the contract's table: when this client closed its channels it means ClientClosed;
while the client is open it was the server or the transport (a broker shedding a flood of calls), and
sends, acks and nacks retry it like UNAVAILABLE.
"""

from __future__ import annotations

import enum

import grpc

from danube_connect_core.errors import DanubeError
from danube_connect_core.resilience import RetriesExhausted

__all__ = [
    "NON_RETRYABLE_CODES",
    "RECREATE_CODES",
    "RETRYABLE_CODES",
    "Action",
    "ClientClosed",
    "DanubeError",
    "NonRetryableError",
    "RetriesExhausted",
    "classify",
    "describe_rpc_error",
    "rpc_error_to_danube",
]


class NonRetryableError(DanubeError):
    """The broker rejected the request with a status that retrying cannot fix."""


class ClientClosed(DanubeError):
    """The object was closed; it cannot be used any more."""


class Action(enum.Enum):
    """What the client does about a failed RPC."""

    RETRY = "retry"
    """Transient: back off and try again on the same producer/consumer."""
    RECREATE = "recreate"
    """The broker lost the producer/consumer (restart, topic moved): look up and re-create, then retry."""
    FAIL = "fail"
    """Permanent: raise at once."""


RETRYABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
RECREATE_CODES = frozenset({grpc.StatusCode.NOT_FOUND})
NON_RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)


def classify(code: grpc.StatusCode) -> Action:
    """Map a gRPC status to the action docs/wire-contract.md §2 prescribes.

    Codes the contract does not name (UNKNOWN, INTERNAL, UNIMPLEMENTED, ...) fail at once: a retry loop on
    an unexplained error only hides it.
    """
    if code in RETRYABLE_CODES:
        return Action.RETRY
    if code in RECREATE_CODES:
        return Action.RECREATE
    return Action.FAIL


def describe_rpc_error(err: grpc.aio.AioRpcError) -> str:
    """``CODE: details`` of a failed RPC, for error messages and logs (never includes metadata)."""
    details = err.details() or ""
    return f"{err.code().name}: {details}" if details else err.code().name


def rpc_error_to_danube(err: grpc.aio.AioRpcError, what: str) -> DanubeError:
    """Wrap a failed RPC into the matching DanubeError, naming the operation ``what``."""
    code = err.code()
    text = f"{what} failed: {describe_rpc_error(err)}"
    if classify(code) is Action.FAIL:
        return NonRetryableError(text, code=code)
    return DanubeError(text, code=code)
