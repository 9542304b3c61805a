"""The three OTLP signals: their export request/response messages, splitting a request into messages,
counting records, and the OTLP JSON form (lowerCamelCase keys, enums as numbers, trace and span ids as
hex instead of protobuf JSON's base64, see the OTLP specification's JSON encoding section).

A split part is always a complete export request (one resource, or one resource + scope + record), so
whatever reads the topic can hand it to any OTLP library.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

__all__ = ["SIGNALS", "Part", "Signal", "from_otlp_json", "to_otlp_json"]

#: Fields that OTLP JSON writes as hex strings (protobuf JSON would write base64).
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})
_METRIC_DATA = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


@dataclass(frozen=True)
class Part:
    """One Danube message: an export request and how many records (spans, points, logs) it holds."""

    request: Message
    records: int
    service_name: str | None


@dataclass(frozen=True)
class Signal:
    name: str
    request_type: type[Message]
    response_type: type[Message]
    resource_field: str
    scope_field: str
    record_field: str
    #: the field of ExportXPartialSuccess counting rejected records
    rejected_field: str
    count: Callable[[Any], int]

    def records(self, request: Any) -> int:
        return sum(
            self.count(record)
            for rs in getattr(request, self.resource_field)
            for scope in getattr(rs, self.scope_field)
            for record in getattr(scope, self.record_field)
        )

    def split(self, request: Any, per: str) -> list[Part]:
        """The request as messages, one per resource (``per = "resource"``) or per record."""
        parts: list[Part] = []
        for rs in getattr(request, self.resource_field):
            service = _service_name(rs.resource)
            if per == "resource":
                one: Any = self.request_type()
                getattr(one, self.resource_field).add().CopyFrom(rs)
                parts.append(Part(one, self.records(one), service))
                continue
            for scope in getattr(rs, self.scope_field):
                for record in getattr(scope, self.record_field):
                    one = self.request_type()
                    rs_copy = getattr(one, self.resource_field).add()
                    rs_copy.resource.CopyFrom(rs.resource)
                    rs_copy.schema_url = rs.schema_url
                    scope_copy = getattr(rs_copy, self.scope_field).add()
                    scope_copy.scope.CopyFrom(scope.scope)
                    scope_copy.schema_url = scope.schema_url
                    getattr(scope_copy, self.record_field).add().CopyFrom(record)
                    parts.append(Part(one, self.count(record), service))
        return parts

    def response(self, rejected: int, message: str) -> Message:
        """The export response; partial_success only when something was rejected (OTLP: an empty
        partial_success means full success)."""
        response = self.response_type()
        if rejected:
            partial: Any = getattr(response, "partial_success")  # noqa: B009 - one field, three types
            setattr(partial, self.rejected_field, rejected)
            partial.error_message = message
        return response


def _one(_record: Any) -> int:
    return 1


def _points(metric: Any) -> int:
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind in _METRIC_DATA else 0


def _service_name(resource: Any) -> str | None:
    for kv in resource.attributes:
        if kv.key == "service.name" and kv.value.WhichOneof("value") == "string_value":
            return str(kv.value.string_value)
    return None


SIGNALS: dict[str, Signal] = {
    "traces": Signal(
        "traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        "resource_spans",
        "scope_spans",
        "spans",
        "rejected_spans",
        _one,
    ),
    "metrics": Signal(
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        "resource_metrics",
        "scope_metrics",
        "metrics",
        "rejected_data_points",
        _points,
    ),
    "logs": Signal(
        "logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        "resource_logs",
        "scope_logs",
        "log_records",
        "rejected_log_records",
        _one,
    ),
}


def to_otlp_json(message: Message) -> dict[str, Any]:
    """OTLP JSON as a dict (protobuf JSON mapping with hex ids and numeric enums)."""
    value = json_format.MessageToDict(message, use_integers_for_enums=True)
    _convert_ids(value, _b64_to_hex)
    return value


def from_otlp_json(value: Any, message: Message) -> None:
    """Fill ``message`` from OTLP JSON. Raises ValueError (json_format.ParseError is one) when it is
    not a valid document of that type. Unknown fields are ignored, as OTLP requires of receivers."""
    if not isinstance(value, dict):
        raise ValueError("an OTLP JSON request is an object")
    _convert_ids(value, _hex_to_b64)
    json_format.ParseDict(value, message, ignore_unknown_fields=True)


def _b64_to_hex(text: str) -> str:
    return base64.b64decode(text).hex()


def _hex_to_b64(text: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"trace/span id {text[:40]!r} is not hex") from None
    return base64.b64encode(raw).decode()


def _convert_ids(value: Any, convert: Callable[[str], str]) -> None:
    """Rewrite the id fields in place, anywhere in the document (spans, links, logs, exemplars)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if key in _ID_FIELDS and isinstance(item, str):
                    node[key] = convert(item)
                elif isinstance(item, dict | list):
                    stack.append(item)
        elif isinstance(node, list):
            stack.extend(i for i in node if isinstance(i, dict | list))
