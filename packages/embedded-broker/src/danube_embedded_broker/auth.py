"""Optional JWT authentication: every RPC must carry ``authorization: Bearer <HS256 JWT>``.

The token must verify with the configured secret (signature, and ``exp``/``nbf`` when present);
anything else fails with UNAUTHENTICATED before the servicer runs. The secret and the token are
never logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import jwt

log = logging.getLogger(__name__)


def token_error(metadata: tuple[tuple[str, str | bytes], ...] | None, secret: str) -> str | None:
    """Why the call's credentials are refused, or ``None`` when they are valid."""
    values = [v for k, v in (metadata or ()) if k.lower() == "authorization"]
    if not values:
        return "missing authorization metadata"
    value = values[0]
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "authorization must be 'Bearer <token>'"
    try:
        jwt.decode(token.strip(), secret, algorithms=["HS256"], options={"verify_aud": False})
    except jwt.PyJWTError as exc:
        return f"invalid token: {type(exc).__name__}"
    return None


class JwtAuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without a valid bearer token with UNAUTHENTICATED."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        reason = token_error(handler_call_details.invocation_metadata, self._secret)
        if reason is None or handler is None:
            return handler
        log.info("refused %s: %s", handler_call_details.method, reason)
        message = f"unauthenticated: {reason}"

        async def deny_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        async def deny_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
            yield  # pragma: no cover - never reached: abort raises

        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(deny_unary, **kwargs)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(deny_stream, **kwargs)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(deny_unary, **kwargs)
        return grpc.stream_stream_rpc_method_handler(deny_stream, **kwargs)
