"""The one exception the broker core raises: a gRPC status code plus a message for the client."""

from __future__ import annotations

import grpc


class BrokerError(Exception):
    """A request the broker refuses; servicers turn it into ``context.abort(code, message)``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"BrokerError({self.code.name}, {self.message!r})"
