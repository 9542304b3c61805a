"""The one exception the broker core raises: a gRPC status code plus a message for the client."""

from __future__ import annotations

import errno

import grpc


class BrokerError(Exception):
    """A request the broker refuses; servicers turn it into ``context.abort(code, message)``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"BrokerError({self.code.name}, {self.message!r})"


#: errno values that mean "the disk is full": the client should back off until space is freed.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def storage_error(action: str, exc: OSError, consequence: str = "nothing was stored") -> BrokerError:
    """The status a client gets when the data dir refused a write.

    ENOSPC/EDQUOT -> RESOURCE_EXHAUSTED, anything else (EROFS, EIO, EACCES ...) -> UNAVAILABLE: both are
    retried by clients (docs/wire-contract.md §2), and both clear without a broker restart once the disk has
    space or is writable again. The message names the failing file and what the failure means for the
    request, e.g. ``cannot store the message for /default/t: No space left on device
    (/data/topics/default/t/log.dat); nothing was stored``.
    """
    code = grpc.StatusCode.RESOURCE_EXHAUSTED if exc.errno in _NO_SPACE else grpc.StatusCode.UNAVAILABLE
    reason = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    return BrokerError(code, f"{action}: {reason}{where}; {consequence}")
