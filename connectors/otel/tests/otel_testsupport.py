"""Helpers for the OTLP source tests: the connector in this event loop against a broker, telemetry made by
the OpenTelemetry SDK itself, the SDK's OTLP exporters (HTTP and gRPC; synchronous, so run in threads),
and counting what really reached the Danube topics.

Imported relatively by the tests beside it (``from .otel_testsupport import ...``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest_asyncio
from danube_connect_core.testing import RunningRuntime, make_config, start_runtime
from danube_source_otel import OtelSettings, OtelSource
from danube_source_otel.signals import SIGNALS, from_otlp_json
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TOPICS = {"traces": "/default/otel-traces", "metrics": "/default/otel-metrics", "logs": "/default/otel-logs"}


@dataclass
class RunningOtel:
    connector: OtelSource
    running: RunningRuntime

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.connector.http_port}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.connector.grpc_port}"


StartOtel = Callable[..., Awaitable[RunningOtel]]


@pytest_asyncio.fixture
async def start_otel() -> AsyncIterator[StartOtel]:
    """``await start_otel(service_url, **otel_settings)``: listeners on free loopback ports."""
    started: list[RunningOtel] = []

    async def start(service_url: str, *, core: dict[str, Any] | None = None, **section: Any) -> RunningOtel:
        section = {"host": "127.0.0.1", "http_port": 0, "grpc_port": 0, **section}
        section.update({f"{k}_topic": v for k, v in TOPICS.items() if f"{k}_topic" not in section})
        settings = OtelSettings.model_validate(section)
        extra = dict(core or {})
        extra.setdefault("retry", {"max_retries": 1, "retry_backoff_ms": 50, "max_backoff_ms": 200})
        config = make_config(service_url, "otel-test", settings, **extra)
        connector = OtelSource()
        running = await start_runtime(connector, config)
        otel = RunningOtel(connector, running)
        started.append(otel)
        async with asyncio.timeout(60):
            while connector.intake is None or connector.intake.sender is None:
                if running.task.done():
                    raise RuntimeError(f"runtime ended early with {running.task.result()}")
                await asyncio.sleep(0.01)
        return otel

    yield start
    for otel in started:
        if not otel.running.task.done():
            await otel.running.stop()


# --- telemetry made by the SDK ----------------------------------------------------------------------


def make_spans(count: int, service: str = "checkout") -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("otel-test")
    for i in range(count):
        with tracer.start_as_current_span(f"op-{i}", attributes={"i": i}):
            pass
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    return spans


def make_metrics(points: int, service: str = "checkout") -> MetricsData:
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=Resource.create({"service.name": service}), metric_readers=[reader])
    counter = provider.get_meter("otel-test").create_counter("requests")
    for i in range(points):
        counter.add(1, {"i": i})  # one data point per attribute set
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return data


def make_logs(count: int, service: str = "checkout") -> list[Any]:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = logging.getLogger(f"otel-test-{service}")
    logger.propagate = False
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        for i in range(count):
            logger.warning("event %d", i)
    finally:
        logger.removeHandler(handler)
    logs = list(memory.get_finished_logs())
    provider.shutdown()
    return logs


# --- the SDK's exporters -------------------------------------------------------------------------------


def exporters(transport: str, otel: RunningOtel, **kwargs: Any) -> dict[str, Any]:
    """The three OTLP exporters of the SDK for ``transport`` ("http" or "grpc"), aimed at ``otel``."""
    kwargs.setdefault("timeout", 60)
    if transport == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return {
            "traces": OTLPSpanExporter(endpoint=f"{otel.http}/v1/traces", **kwargs),
            "metrics": OTLPMetricExporter(endpoint=f"{otel.http}/v1/metrics", **kwargs),
            "logs": OTLPLogExporter(endpoint=f"{otel.http}/v1/logs", **kwargs),
        }
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

    return {
        "traces": GrpcSpans(endpoint=otel.grpc, insecure=True, **kwargs),
        "metrics": GrpcMetrics(endpoint=otel.grpc, insecure=True, **kwargs),
        "logs": GrpcLogs(endpoint=otel.grpc, insecure=True, **kwargs),
    }


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- what reached Danube -----------------------------------------------------------------------------


def decode(signal: str, message: Any, encoding: str) -> Any:
    """A topic message back as the signal's export request."""
    request: Any = SIGNALS[signal].request_type()
    if encoding == "json":
        from_otlp_json(orjson.loads(message.payload), request)
    else:
        request.ParseFromString(message.payload)
    return request


def records_on(signal: str, messages: list[Any], encoding: str) -> int:
    return sum(SIGNALS[signal].records(decode(signal, m, encoding)) for m in messages)


class RecordCount:
    """A ``TopicReader.until`` predicate: at least ``want`` records, counting only new messages each
    time (re-decoding everything on every arrival would starve the loop the reader acks from)."""

    def __init__(self, signal: str, encoding: str, want: int) -> None:
        self.signal, self.encoding, self.want = signal, encoding, want
        self.seen = 0
        self.records = 0

    def __call__(self, messages: list[Any]) -> bool:
        self.records += records_on(self.signal, messages[self.seen :], self.encoding)
        self.seen = len(messages)
        return self.records >= self.want


def span_ids_on(messages: list[Any], encoding: str) -> list[bytes]:
    ids: list[bytes] = []
    for m in messages:
        for rs in decode("traces", m, encoding).resource_spans:
            for ss in rs.scope_spans:
                ids.extend(span.span_id for span in ss.spans)
    return ids
