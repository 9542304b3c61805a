"""OTLP/gRPC: the collector services ``TraceService``, ``MetricsService`` and ``LogsService``
(``Export``), from opentelemetry-proto's generated stubs, on grpc.aio.

Answers: OK with the export response (``partial_success`` when records were rejected); UNAVAILABLE with a
``google.rpc.RetryInfo`` in the trailers when Danube did not accept the data (OTLP exporters retry after
that delay); UNAUTHENTICATED for credentials; RESOURCE_EXHAUSTED (by grpc itself) for a message over
``max_body_bytes``; INVALID_ARGUMENT never reaches us for malformed protobuf (grpc's deserialiser fails
the call with INTERNAL before the handler). gzip is grpc's own per-message compression.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from danube_source_otel.intake import Intake, Unauthenticated, Unavailable
from danube_source_otel.signals import SIGNALS, Signal

__all__ = ["OtlpGrpcServer"]

_RETRY_INFO_KEY = "google.rpc.retryinfo-bin"


class _Export:
    """The one ``Export`` implementation, bound to a signal."""

    def __init__(self, intake: Intake, signal: Signal) -> None:
        self.intake = intake
        self.signal = signal

    async def Export(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        name = self.signal.name
        metadata = {k.lower(): v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        try:
            self.intake.authenticate(metadata)
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
        return self.signal.response(delivered.rejected, delivered.message)


class _Traces(_Export, trace_service_pb2_grpc.TraceServiceServicer):
    pass


class _Metrics(_Export, metrics_service_pb2_grpc.MetricsServiceServicer):
    pass


class _Logs(_Export, logs_service_pb2_grpc.LogsServiceServicer):
    pass


_SERVICES: dict[str, tuple[type[_Export], Any]] = {
    "traces": (_Traces, trace_service_pb2_grpc.add_TraceServiceServicer_to_server),
    "metrics": (_Metrics, metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server),
    "logs": (_Logs, logs_service_pb2_grpc.add_LogsServiceServicer_to_server),
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
        for name in self.intake.topics:
            servicer_type, add = _SERVICES[name]
            add(servicer_type(self.intake, SIGNALS[name]), server)
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
