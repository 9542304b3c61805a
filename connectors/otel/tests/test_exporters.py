"""The OpenTelemetry SDK's own OTLP exporters (HTTP and gRPC) against the connector and an embedded broker:
5,000 spans, 1,000 metric points and 1,000 log records per transport, all on the Danube topics.

HTTP publishes OTLP JSON, gRPC OTLP protobuf (one message per resource: the SDK sends one resource per
request); one message per record is checked in test_requests.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from danube_connect_core.testing.topic_reader import topic_reader
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from .otel_testsupport import (
    TOPICS,
    RecordCount,
    StartOtel,
    batches,
    exporters,
    make_logs,
    make_metrics,
    make_spans,
    records_on,
    span_ids_on,
)

SPANS, POINTS, LOGS = 5_000, 1_000, 1_000
EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "schemas"


@pytest.mark.parametrize(
    ("transport", "split", "encoding"), [("http", "resource", "json"), ("grpc", "resource", "protobuf")]
)
async def test_sdk_exporters_deliver_everything(
    broker: Any, start_otel: StartOtel, transport: str, split: str, encoding: str
) -> None:
    # JSON is checked against the example's JSON Schemas (anything refused would be dead-lettered and
    # missing from the count); protobuf goes out as bytes
    schemas = [
        {
            "topic": TOPICS[s],
            "subject": f"otlp-{s}",
            "schema_type": "json_schema",
            "schema_file": str(EXAMPLE / f"otlp-{s}.json"),
        }
        if encoding == "json"
        else {"topic": TOPICS[s], "subject": f"otlp-{s}-pb", "schema_type": "bytes"}
        for s in TOPICS
    ]
    otel = await start_otel(
        broker.url, split=split, encoding=encoding, partitions=2, core={"schemas": schemas}
    )
    spans, metrics, logs = make_spans(SPANS), make_metrics(POINTS), make_logs(LOGS)
    sent = exporters(transport, otel)
    async with (
        topic_reader(broker.url, TOPICS["traces"], "t") as traces,
        topic_reader(broker.url, TOPICS["metrics"], "m") as points,
        topic_reader(broker.url, TOPICS["logs"], "l") as log_records,
    ):

        def export_all() -> list[Any]:
            results = [sent["traces"].export(b) for b in batches(spans, 512)]
            results.append(sent["metrics"].export(metrics))
            results += [sent["logs"].export(b) for b in batches(logs, 512)]
            for exporter in sent.values():
                exporter.shutdown()
            return results

        results = await asyncio.to_thread(export_all)
        assert all(
            r in (SpanExportResult.SUCCESS, MetricExportResult.SUCCESS) or r.name == "SUCCESS"
            for r in results
        ), results

        # every record the exporters were told was accepted is on its topic
        await traces.until(RecordCount("traces", encoding, SPANS), within=180)
        await points.until(RecordCount("metrics", encoding, POINTS), within=120)
        await log_records.until(RecordCount("logs", encoding, LOGS), within=120)
        ids = span_ids_on(traces.messages, encoding)
        assert len(ids) == SPANS and set(ids) == {s.context.span_id.to_bytes(8, "big") for s in spans}
        assert records_on("metrics", points.messages, encoding) == POINTS
        assert records_on("logs", log_records.messages, encoding) == LOGS
        assert {m.attributes["otel.service.name"] for m in traces.messages} == {"checkout"}
