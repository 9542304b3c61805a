"""OTLP/HTTP and OTLP/gRPC answers on a real connector and broker: the documented codes for malformed
protobuf (400), wrong content type (415), oversized and gzip-bomb bodies (413 / RESOURCE_EXHAUSTED),
missing credentials (401 / UNAUTHENTICATED); OTLP JSON in (hex ids) and out; one message per record; and
partial success: records the topic's schema refuses are dead-lettered and counted as rejected."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
from danube_connect_core.testing.topic_reader import topic_reader
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from .otel_testsupport import TOPICS, StartOtel

TOKEN = "otel-test-token-0123456789"
TRACE_ID = "5b8efff798038103d269b633813fc60c"


def export_request(spans: int, *, name: str = "op", service: str = "svc") -> dict[str, Any]:
    """An OTLP JSON trace export request (hex ids, as OTLP JSON writes them)."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "t"},
                        "spans": [
                            {
                                "traceId": TRACE_ID,
                                "spanId": f"{i + 1:016x}",
                                "name": f"{name}-{i}" if name != "bad" or i % 2 else "bad",
                                "kind": 2,
                                "startTimeUnixNano": "1",
                                "endTimeUnixNano": "2",
                            }
                            for i in range(spans)
                        ],
                    }
                ],
            }
        ]
    }


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as r:
        return r.status, await r.read(), r.headers


async def test_bad_requests_get_the_documented_codes(broker: Any, start_otel: StartOtel) -> None:
    otel = await start_otel(broker.url, max_body_bytes=64 * 1024, auth="bearer", token=TOKEN)
    url = f"{otel.http}/v1/traces"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    pb = {"Content-Type": "application/x-protobuf", **auth}
    good = trace_service_pb2.ExportTraceServiceRequest()
    json_format.ParseDict({"resourceSpans": []}, good)

    status, body, _ = await post(url, b"\xff\xff\xff\xff", pb)  # malformed protobuf
    assert status == 400 and b"not a valid OTLP protobuf" in body
    status, body, _ = await post(url, b"{not json", {"Content-Type": "application/json", **auth})
    assert status == 400 and json.loads(body)["code"] == 3
    status, _, _ = await post(url, b"x", {"Content-Type": "text/plain", **auth})
    assert status == 415
    status, _, _ = await post(url, b"\0" * (100 * 1024), pb)  # declared length over the limit
    assert status == 413
    bomb = gzip.compress(b"\0" * (2 * 1024 * 1024))  # ~2 KB that inflate to 2 MB
    status, _, _ = await post(url, bomb, {**pb, "Content-Encoding": "gzip"})
    assert status == 413
    status, body, _ = await post(url, good.SerializeToString(), {"Content-Type": "application/x-protobuf"})
    assert status == 401 and TOKEN.encode() not in body
    status, _, _ = await post(url, good.SerializeToString(), {**pb, "Authorization": "Bearer wrong"})
    assert status == 401
    status, _, _ = await post(f"{otel.http}/v1/nothing", b"", pb)
    assert status == 404
    status, _, _ = await post(
        url, gzip.compress(good.SerializeToString()), {**pb, "Content-Encoding": "gzip"}
    )
    assert status == 200

    async with grpc.aio.insecure_channel(otel.grpc) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Export(good, timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        big = trace_service_pb2.ExportTraceServiceRequest()
        big.MergeFrom(
            json_format.ParseDict(
                {
                    "resourceSpans": [
                        {"resource": {"attributes": [{"key": "x", "value": {"stringValue": "y" * 70_000}}]}}
                    ]
                },
                trace_service_pb2.ExportTraceServiceRequest(),
            )
        )
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await stub.Export(big, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=30)
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        answer = await stub.Export(good, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=30)
        assert not answer.HasField("partial_success")
        # malformed protobuf on gRPC
        raw = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.aio.AioRpcError) as malformed:
            await raw(b"\xff\xff\xff\xff", metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=30)
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_json_per_record_and_partial_success(
    broker: Any, start_otel: StartOtel, tmp_path: Path
) -> None:
    # the schema refuses spans named "bad": those records are dead-lettered and reported as rejected
    schema = tmp_path / "span.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "required": ["resourceSpans"],
                "properties": {
                    "resourceSpans": {
                        "items": {
                            "properties": {
                                "scopeSpans": {
                                    "items": {
                                        "properties": {
                                            "spans": {
                                                "items": {"properties": {"name": {"not": {"const": "bad"}}}}
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            }
        )
    )
    topic = TOPICS["traces"]
    otel = await start_otel(
        broker.url,
        split="record",
        core={
            "schemas": [
                {
                    "topic": topic,
                    "subject": "otlp-span",
                    "schema_type": "json_schema",
                    "schema_file": str(schema),
                }
            ]
        },
    )
    async with topic_reader(broker.url, topic, "r") as reader:
        status, body, headers = await post(
            f"{otel.http}/v1/traces",
            orjson.dumps(export_request(10, name="bad")),
            {"Content-Type": "application/json"},
        )
        assert status == 200, body
        assert headers["Content-Type"].startswith("application/json")
        answer = json.loads(body)
        assert answer["partialSuccess"]["rejectedSpans"] == "5"  # int64 in protobuf JSON is a string
        assert "dead-lettered" in answer["partialSuccess"]["errorMessage"]
        messages = await reader.take(5, within=60)
        published = [orjson.loads(m.payload) for m in messages]
        spans = [p["resourceSpans"][0]["scopeSpans"][0]["spans"] for p in published]
        assert all(len(s) == 1 for s in spans)  # one message per span
        assert {s[0]["traceId"] for s in spans} == {TRACE_ID}  # OTLP JSON: hex ids both ways
        assert sorted(s[0]["spanId"] for s in spans) == [f"{i + 1:016x}" for i in range(1, 10, 2)]
        assert {m.attributes["otel.service.name"] for m in messages} == {"svc"}
