"""The OTLP mapping without a broker: splitting per resource and per record, record counts, OTLP JSON
(hex ids both ways, unknown fields ignored), settings checks, and authentication."""

from __future__ import annotations

from typing import Any

import pytest
from danube_source_otel import OtelSettings
from danube_source_otel.intake import Intake, Unauthenticated
from danube_source_otel.metrics import OtelMetrics
from danube_source_otel.signals import SIGNALS, from_otlp_json, to_otlp_json
from prometheus_client import CollectorRegistry
from pydantic import ValidationError


def metrics_request() -> Any:
    """Two resources; the first has two metrics (3 + 2 points), the second one metric (1 point)."""
    doc = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]},
                "scopeMetrics": [
                    {
                        "metrics": [
                            {"name": "g", "gauge": {"dataPoints": [{"asInt": "1"}] * 3}},
                            {
                                "name": "s",
                                "sum": {"dataPoints": [{"asDouble": 1.5}] * 2, "isMonotonic": True},
                            },
                        ]
                    }
                ],
            },
            {
                "resource": {},
                "scopeMetrics": [{"metrics": [{"name": "h", "histogram": {"dataPoints": [{"count": "4"}]}}]}],
                "someFutureField": 1,
            },
        ]
    }
    request = SIGNALS["metrics"].request_type()
    from_otlp_json(doc, request)
    return request


def test_split_per_resource_and_per_record_keeps_every_point() -> None:
    signal, request = SIGNALS["metrics"], metrics_request()
    assert signal.records(request) == 6
    per_resource = signal.split(request, "resource")
    assert [p.records for p in per_resource] == [5, 1]
    assert [p.service_name for p in per_resource] == ["a", None]
    per_record = signal.split(request, "record")
    assert [p.records for p in per_record] == [3, 2, 1]
    # every part is a complete export request with its resource
    assert all(len(p.request.resource_metrics) == 1 for p in per_record)  # type: ignore[attr-defined]
    assert per_record[1].request.resource_metrics[0].resource == request.resource_metrics[0].resource  # type: ignore[attr-defined]


def test_otlp_json_ids_are_hex_both_ways() -> None:
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "links": [
                                    {
                                        "traceId": "00000000000000000000000000000001",
                                        "spanId": "0000000000000002",
                                    }
                                ],
                                "kind": 3,
                            }
                        ]
                    }
                ]
            }
        ]
    }
    request = SIGNALS["traces"].request_type()
    from_otlp_json(doc, request)
    span = request.resource_spans[0].scope_spans[0].spans[0]  # type: ignore[attr-defined]
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert span.links[0].span_id.hex() == "0000000000000002"
    back = to_otlp_json(request)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert back["spanId"] == "eee19b7ec3c1b174" and back["parentSpanId"] == "eee19b7ec3c1b173"
    assert back["links"][0]["traceId"] == "00000000000000000000000000000001"
    assert back["kind"] == 3  # enums as numbers


@pytest.mark.parametrize("bad", [[], {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}])
def test_invalid_otlp_json_is_a_value_error(bad: Any) -> None:
    with pytest.raises(ValueError):
        from_otlp_json(bad, SIGNALS["traces"].request_type())


def test_partial_success_only_when_something_was_rejected() -> None:
    ok: Any = SIGNALS["logs"].response(0, "")
    assert not ok.HasField("partial_success")
    partial: Any = SIGNALS["logs"].response(3, "refused")
    assert partial.partial_success.rejected_log_records == 3


def test_settings_refuse_auth_without_a_token_and_no_listener() -> None:
    with pytest.raises(ValidationError, match="needs a token"):
        OtelSettings(auth="bearer")
    with pytest.raises(ValidationError, match="both off"):
        OtelSettings(http=False, grpc=False)
    assert OtelSettings(metrics_topic="").topics() == {
        "traces": "/default/otel-traces",
        "logs": "/default/otel-logs",
    }


@pytest.mark.parametrize(
    ("auth", "headers", "ok"),
    [
        ("bearer", {"authorization": "Bearer s3cret-token"}, True),
        ("bearer", {"authorization": "bearer s3cret-token"}, True),
        ("bearer", {"authorization": "Bearer wrong"}, False),
        ("bearer", {}, False),
        ("api_key", {"x-api-key": "s3cret-token"}, True),
        ("api_key", {"x-api-key": "s3cret"}, False),
        ("api_key", {"authorization": "Bearer s3cret-token"}, False),
    ],
)
def test_authentication_never_echoes_the_secret(auth: str, headers: dict[str, str], ok: bool) -> None:
    settings = OtelSettings(auth=auth, token="s3cret-token")  # type: ignore[arg-type]
    intake = Intake(settings, OtelMetrics("t", CollectorRegistry()))
    if ok:
        intake.authenticate(headers)
        return
    with pytest.raises(Unauthenticated) as refused:
        intake.authenticate(headers)
    assert "s3cret" not in str(refused.value)
