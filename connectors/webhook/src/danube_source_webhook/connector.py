"""WebhookSource: a streaming source that publishes HTTP webhook deliveries to Danube topics.

Lifecycle: ``bind_runtime`` registers the webhook metrics in the runtime's registry (exported on the core's
/metrics); ``initialize`` validates the endpoints, builds authentication, rate limits and idempotency
stores and binds the HTTP port (requests answer 503 until the producers exist), and has the runtime watch
the HTTP server (if it stops serving unexpectedly the connector exits 1); ``start_streaming`` receives the
runtime's sender; from then on each request awaits its own publish through the core's delivery pipeline
(bound, validation, retries, dead letters). Readiness is the core's: /health and /ready on the metrics
port (broker, this connector's ``health_check``: the server listens, and intake). Once the runtime stops
intake (SIGTERM), the core's /ready answers 503 at once (load balancers stop sending while the drain
finishes the publishes in flight) and new publishes answer 503 "shutting down" with Retry-After.
``shutdown`` (after the runtime drained every in-flight publish) closes the HTTP server.

Delivery guarantee: at-least-once from the sender's point of view. A 2xx is answered only after the broker
acknowledged the event (invariant 1; with ``reliable_dispatch = true`` that means stored durably). Any
failure answers non-2xx, so a webhook provider's retry policy redelivers; a retry of an event that did reach
the broker is de-duplicated only when the endpoint has ``[webhook.endpoints.idempotency]``.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from danube_connect_core import (
    ConfigError,
    ConnectorConfig,
    ProducerConfig,
    RuntimeContext,
    SourceConnector,
    SourceMode,
    SourceSender,
    connector_main,
)
from danube_connect_core.schema_codec import JsonSchemaCodec

from danube_source_webhook.auth import build_authenticator
from danube_source_webhook.endpoint import Endpoint
from danube_source_webhook.idempotency import IdempotencyStore
from danube_source_webhook.json_pointer import compile_pointer
from danube_source_webhook.metrics import WebhookMetrics
from danube_source_webhook.rate_limit import TokenBucket
from danube_source_webhook.server import WebhookServer
from danube_source_webhook.settings import WebhookSettings

__all__ = ["WebhookSource", "main"]

log = logging.getLogger("danube_connect.webhook")


class WebhookSource(SourceConnector):
    """Receives webhooks over HTTP and publishes each one to Danube before answering 2xx."""

    name = "webhook"
    config_section = "webhook"
    settings_model = WebhookSettings
    env_overrides: ClassVar[dict[str, str]] = {
        "WEBHOOK_HOST": "host",
        "WEBHOOK_PORT": "port",
        "WEBHOOK_MAX_BODY_BYTES": "max_body_bytes",
    }
    mode = SourceMode.STREAMING

    def __init__(self) -> None:
        self.settings: WebhookSettings | None = None
        self.server: WebhookServer | None = None
        self.metrics: WebhookMetrics | None = None

    @property
    def port(self) -> int:
        """The bound HTTP port (after ``initialize``)."""
        return self.server.port if self.server is not None else 0

    def bind_runtime(self, context: RuntimeContext) -> None:
        """Register the webhook metrics in the registry the core's /metrics serves."""
        self.metrics = WebhookMetrics(context.connector_name, context.metrics_registry)

    async def initialize(self, config: ConnectorConfig) -> None:
        """Build the endpoints and bind the port. Raises ConfigError (exit 2) for an unusable endpoint."""
        context = self.runtime_context  # RuntimeError when not run by a runtime
        assert self.metrics is not None  # bind_runtime ran
        settings = config.settings_as(WebhookSettings)
        self.settings = settings
        endpoints: dict[str, Endpoint] = {}
        for i, es in enumerate(settings.endpoints):
            auth_settings = settings.effective_auth(es)
            rate = settings.effective_rate_limit(es)
            auth = build_authenticator(auth_settings)
            if auth.scheme == "none":
                log.warning(
                    "endpoint %s accepts unauthenticated requests: configure [webhook.auth] or set "
                    "WEBHOOK_API_KEY",
                    es.path,
                )
            endpoints[es.path] = Endpoint(
                settings=es,
                auth=auth,
                bucket=TokenBucket(rate.rate_per_s, rate.capacity) if rate is not None else None,
                idempotency=(
                    IdempotencyStore(es.idempotency.window_s, es.idempotency.max_entries)
                    if es.idempotency is not None
                    else None
                ),
                key_pointer=compile_pointer(es.key) if es.key is not None else None,
                max_body_bytes=settings.max_body_bytes,
                request_timeout_s=settings.request_timeout_ms / 1000,
                explainer=_explainer(config, es.danube_topic, i),
                idempotency_pointer=(
                    compile_pointer(pointer)
                    if es.idempotency is not None and (pointer := es.idempotency.body_pointer) is not None
                    else None
                ),
            )
        self.server = WebhookServer(endpoints, self.metrics, settings.host, settings.port)
        port = await self.server.start()
        # the server stopping on its own (not through shutdown) is fatal: the runtime drains and exits 1
        context.watch(self.server.serving)
        log.info(
            "webhook server listening on %s:%d (%d endpoint%s)",
            settings.host,
            port,
            len(endpoints),
            "" if len(endpoints) == 1 else "s",
            extra={"webhook_port": port, "endpoints": sorted(endpoints)},
        )

    async def producer_configs(self) -> list[ProducerConfig]:
        """One producer per endpoint topic. The endpoint's ``max_in_flight`` is its topic's in-flight bound
        in the core, in total: spread over the partitions as the per-partition window (endpoints sharing a
        topic: the largest)."""
        s = self.settings
        assert s is not None
        by_topic: dict[str, ProducerConfig] = {}
        for es in s.endpoints:
            window = -(-s.effective_max_in_flight(es) // (es.partitions or 1))  # ceiling division
            seen = by_topic.get(es.danube_topic)
            if seen is not None and seen.max_in_flight is not None:
                window = max(window, seen.max_in_flight)
            by_topic[es.danube_topic] = ProducerConfig(
                es.danube_topic,
                partitions=es.partitions,
                reliable_dispatch=es.reliable_dispatch,
                max_in_flight=window,
            )
        return list(by_topic.values())

    async def start_streaming(self, sender: SourceSender) -> None:
        """Open intake: requests publish through ``sender`` from now on."""
        assert self.server is not None
        self.server.sender = sender

    async def health_check(self) -> None:
        if self.server is None or not self.server.running:
            raise RuntimeError("webhook HTTP server is not running")

    async def shutdown(self) -> None:
        """Close the HTTP server (the runtime has already drained every in-flight publish).

        The sender stays attached: a request still arriving on an open connection while the server closes
        is answered 503 "shutting down" (the sender raises ShuttingDown), not "starting".
        """
        if self.server is not None:
            await self.server.stop()


def _explainer(config: ConnectorConfig, topic: str, index: int) -> JsonSchemaCodec | None:
    mapping = config.schema_for(topic)
    if mapping is None or mapping.schema_type != "json_schema" or mapping.schema_file is None:
        return None
    try:
        return JsonSchemaCodec(mapping.schema_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"schema for {topic} is unusable: {exc}",
            file=config.source_file,
            key=f"webhook.endpoints[{index}].danube_topic",
        ) from None


def main() -> None:
    connector_main(WebhookSource)
