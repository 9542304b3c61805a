"""The ``[otel]`` table: listeners, each signal's topic, how requests become messages, limits, auth."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = ["OtelSettings"]


class OtelSettings(BaseModel):
    """Unknown keys are errors. ``grpc_port``/``http_port`` 0 pick a free port; ``http``/``grpc`` false
    disable that listener (at least one must be on). A signal whose topic is empty is answered 404 /
    UNIMPLEMENTED."""

    model_config = ConfigDict(extra="forbid")

    host: str = "0.0.0.0"
    http: bool = True
    grpc: bool = True
    http_port: int = Field(default=4318, ge=0, le=65535)
    grpc_port: int = Field(default=4317, ge=0, le=65535)
    traces_topic: str | None = "/default/otel-traces"
    metrics_topic: str | None = "/default/otel-metrics"
    logs_topic: str | None = "/default/otel-logs"
    partitions: int | None = Field(default=None, ge=1)
    reliable_dispatch: bool = True
    #: One Danube message per resource (the resource with all its scopes and records) or per record
    #: (span, metric, log record: each with its resource and scope). Either way a message is a complete
    #: OTLP export request, so it can be replayed to any OTLP receiver as it is.
    split: Literal["resource", "record"] = "resource"
    #: Published form: OTLP JSON (schema_type json_schema) or OTLP protobuf bytes (schema_type bytes).
    encoding: Literal["json", "protobuf"] = "json"
    #: Largest request body (after gzip decompression) and gRPC message: 413 / RESOURCE_EXHAUSTED beyond.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    #: In-flight bound of each signal's topic (messages), in total over its partitions.
    max_in_flight: int = Field(default=256, ge=1)
    #: Seconds exporters are told to wait before retrying (Retry-After, gRPC RetryInfo).
    retry_after_s: int = Field(default=2, ge=1, le=300)
    #: ``bearer``: ``Authorization: Bearer <token>``; ``api_key``: the token in header ``auth_header``.
    auth: Literal["none", "bearer", "api_key"] = "none"
    auth_header: str = "x-api-key"
    #: The secret; set it through the environment (OTEL_AUTH_TOKEN), never in a committed file.
    token: SecretStr | None = None

    @model_validator(mode="after")
    def _coherent(self) -> OtelSettings:
        if not (self.http or self.grpc):
            raise ValueError("http and grpc are both off: nothing would receive OTLP")
        if self.auth != "none" and (self.token is None or not self.token.get_secret_value()):
            raise ValueError(f"auth = {self.auth!r} needs a token (set OTEL_AUTH_TOKEN)")
        if not any((self.traces_topic, self.metrics_topic, self.logs_topic)):
            raise ValueError("no signal has a topic")
        return self

    def topics(self) -> dict[str, str]:
        """Signal name -> topic, for the enabled signals."""
        pairs = (("traces", self.traces_topic), ("metrics", self.metrics_topic), ("logs", self.logs_topic))
        return {name: topic for name, topic in pairs if topic}
