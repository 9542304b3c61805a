"""OTLP/gRPC: the collector services ``TraceService``, ``MetricsService`` and ``LogsService``
(``Export``), as opentelemetry-proto's generated descriptors define them, on grpc.aio.

The handlers are registered with a raw-bytes request deserialiser and parse the request themselves, so a
malformed protobuf is answered INVALID_ARGUMENT (grpc's own deserialiser would fail the call with
UNKNOWN and log a traceback per call).

Answers: OK with the export response (``partial_success`` when records were rejected); UNAVAILABLE with a
``google.rpc.RetryInfo`` in the trailers when Danube did not accept the data (OTLP exporters retry after
that delay); UNAUTHENTICATED for credentials; INVALID_ARGUMENT for a body that is not the export request;
RESOURCE_EXHAUSTED (by grpc itself) for a message over ``max_body_bytes``; UNIMPLEMENTED for a signal
without a topic. gzip is grpc's own per-message compression.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from danube_source_otel.intake import Intake, Unauthenticated, Unavailable
from danube_source_otel.signals import SIGNALS, Signal

__all__ = ["OtlpGrpcServer"]

_RETRY_INFO_KEY = "google.rpc.retryinfo-bin"


class _Export:
    """The one ``Export`` implementation, bound to a signal."""

    def __init__(self, intake: Intake, signal: Signal) -> None:
        self.intake = intake
        self.signal = signal

    async def export(self, body: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        name = self.signal.name
        metadata = {k.lower(): v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        try:
            self.intake.authenticate(metadata)
            request = self._parse(body)
            if request is None:
                self.intake.metrics.request("grpc", name, "INVALID_ARGUMENT")
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"not a valid {self.signal.request_type.__name__} (protobuf)",
                )
            delivered = await self.intake.deliver(self.signal, request)
        except Unauthenticated as exc:
            self.intake.metrics.request("grpc", name, "UNAUTHENTICATED")
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except Unavailable as exc:
            self.intake.metrics.request("grpc", name, "UNAVAILABLE")
            info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=exc.retry_after_s))
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                str(exc),
                trailing_metadata=((_RETRY_INFO_KEY, info.SerializeToString()),),
            )
        self.intake.metrics.request("grpc", name, "OK")
        return self.signal.response(delivered.rejected, delivered.message).SerializeToString()

    def _parse(self, body: bytes) -> Any:
        request = self.signal.request_type()
        try:
            request.ParseFromString(body)
        except DecodeError:
            return None
        return request

    def handler(self) -> grpc.GenericRpcHandler:
        export: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(self.export)
        return grpc.method_handlers_generic_handler(_SERVICES[self.signal.name], {"Export": export})


#: the full gRPC service name of each signal, from the generated descriptors
_SERVICES = {
    "traces": trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name,
    "metrics": metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name,
    "logs": logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name,
}


class OtlpGrpcServer:
    def __init__(self, intake: Intake, host: str, port: int) -> None:
        self.intake = intake
        self.host = host
        self.port = port
        self._server: grpc.aio.Server | None = None

    async def start(self) -> int:
        limit = self.intake.settings.max_body_bytes
        server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", limit), ("grpc.so_reuseport", 0)]
        )
        server.add_generic_rpc_handlers(
            tuple(_Export(self.intake, SIGNALS[name]).handler() for name in self.intake.topics)
        )
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.port = server.add_insecure_port(f"{host}:{self.port}")
        if self.port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {self.host}")
        await server.start()
        self._server = server
        return self.port

    @property
    def running(self) -> bool:
        return self._server is not None

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=5.0)
            self._server = None
