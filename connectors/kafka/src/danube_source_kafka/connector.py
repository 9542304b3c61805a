"""KafkaSource: Kafka topics to Danube topics, consumer-group offsets committed only for records Danube
acknowledged.

Streaming source. ``initialize`` validates the mappings, builds the consumer (SASL and TLS from the
settings) and joins the group (a Kafka cluster that cannot be reached is not an error here: /ready stays
503 until it answers; refused credentials are); ``start_streaming`` starts the fetch loop;
``commit`` hands acknowledged offsets to the group (see :mod:`danube_source_kafka.intake` for the
guarantees, rebalances included); ``health_check`` fails while no Kafka broker answers a metadata request
and raises Fatal after a fatal error (which makes the runtime exit 1). ``shutdown`` stops fetching and
leaves the group (the runtime committed what was acknowledged before).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]
from aiokafka.conn import create_conn  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from aiokafka.helpers import create_ssl_context  # type: ignore[import-untyped]
from danube_connect_core import (
    ConfigError,
    ConnectorConfig,
    Fatal,
    Offset,
    ProducerConfig,
    RuntimeContext,
    SourceConnector,
    SourceMode,
    SourceSender,
    connector_main,
)

from danube_source_kafka.intake import Intake, Route
from danube_source_kafka.metrics import KafkaMetrics
from danube_source_kafka.records import read_format
from danube_source_kafka.settings import KafkaSettings

__all__ = ["KafkaSource", "main"]

log = logging.getLogger("danube_connect.kafka")


class KafkaSource(SourceConnector):
    """Kafka source: a consumer group member publishing each record to its mapped Danube topic."""

    name = "kafka"
    config_section = "kafka"
    settings_model = KafkaSettings
    env_overrides: ClassVar[dict[str, str]] = {
        "KAFKA_BOOTSTRAP_SERVERS": "bootstrap_servers",
        "KAFKA_GROUP_ID": "group_id",
        "KAFKA_CLIENT_ID": "client_id",
        "KAFKA_START_POSITION": "start_position",
        "KAFKA_SECURITY_PROTOCOL": "security_protocol",
        "KAFKA_SASL_MECHANISM": "sasl.mechanism",
        "KAFKA_SASL_USERNAME": "sasl.username",
        "KAFKA_SASL_PASSWORD": "sasl.password",
    }
    mode = SourceMode.STREAMING

    def __init__(self) -> None:
        self.settings: KafkaSettings | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.intake: Intake | None = None
        self.metrics: KafkaMetrics | None = None
        self._context: RuntimeContext | None = None
        self._producers: list[ProducerConfig] = []
        self._starter: asyncio.Task[None] | None = None

    def bind_runtime(self, context: RuntimeContext) -> None:
        """Register the Kafka metrics in the registry the core's /metrics serves."""
        self._context = context
        self.metrics = KafkaMetrics(context.connector_name, context.metrics_registry)

    async def initialize(self, config: ConnectorConfig) -> None:
        s = config.settings_as(KafkaSettings)
        self.settings = s
        if self.metrics is None:  # run outside a runtime (tests): a private registry
            from prometheus_client import CollectorRegistry

            self.metrics = KafkaMetrics(config.connector_name, CollectorRegistry())
        self._producers = _producer_configs(s, config)
        routes: dict[str, Route | None] = {}

        def route_for(topic: str) -> Route | None:
            if topic not in routes:
                m = s.mapping_for(topic)
                if m is None:
                    routes[topic] = None
                else:
                    schema = config.schema_for(m.danube_topic)
                    routes[topic] = Route(
                        m, read_format(schema.schema_type if schema else None, m.payload_format)
                    )
            return routes[topic]

        self.consumer = _consumer(s, config)
        self.intake = Intake(s, self.consumer, route_for, self.metrics, self._fail)
        names = [m.kafka_topic for m in s.topic_mappings if m.kafka_topic is not None]
        patterns = [m.kafka_pattern for m in s.topic_mappings if m.kafka_pattern is not None]
        if patterns:
            # One subscription: a regular expression matching the names and the patterns (whole names).
            alternatives = [re.escape(n) for n in names] + [f"(?:{p})" for p in patterns]
            self.consumer.subscribe(
                pattern=f"^(?:{'|'.join(alternatives)})$", listener=self.intake.listener()
            )
        else:
            self.consumer.subscribe(topics=names, listener=self.intake.listener())
        try:
            await self.consumer.start()
            self.intake.consumer_started.set()
        except KafkaError as exc:
            refused = await _refusal(s, config)
            if refused is not None:
                raise Fatal(refused) from exc
            # Unreachable now: keep trying in the background; /ready stays 503 until it answers.
            log.warning("Kafka at %s not reachable yet: %s", s.bootstrap_servers, exc)
            self._starter = asyncio.get_running_loop().create_task(self._keep_starting(), name="kafka-start")

    async def _keep_starting(self) -> None:
        """Start the consumer once Kafka answers (backoff 1 s doubling to 30 s); refused credentials are
        fatal."""
        assert self.consumer is not None and self.intake is not None
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self.consumer.start()
            except KafkaError as exc:
                assert self.settings is not None
                refused = await _refusal(self.settings, None)
                if refused is not None:
                    self._fail(refused)
                    return
                log.warning("Kafka at %s not reachable yet: %s", self._bootstrap(), exc)
                delay = min(30.0, delay * 2)
                continue
            log.info("Kafka at %s answered: consumer started", self._bootstrap())
            self.intake.consumer_started.set()
            return

    async def producer_configs(self) -> list[ProducerConfig]:
        return list(self._producers)

    async def start_streaming(self, sender: SourceSender) -> None:
        assert self.intake is not None
        self.intake.start(sender)

    async def commit(self, offsets: list[Offset]) -> None:
        if self.intake is not None:
            await self.intake.commit(offsets)

    async def health_check(self) -> None:
        if self.consumer is None or self.intake is None:
            raise RuntimeError("not initialised")
        if self.intake.fatal is not None:
            raise Fatal(self.intake.fatal)
        if not self.intake.consumer_started.is_set():
            raise ConnectionError(f"Kafka at {self._bootstrap()} not reachable yet")
        try:
            await asyncio.wait_for(self.consumer.topics(), 10)
        except (KafkaError, TimeoutError) as exc:
            if _is_auth_error(exc):
                raise Fatal(f"Kafka refused the credentials: {exc}") from exc
            raise ConnectionError(f"Kafka at {self._bootstrap()} does not answer: {exc}") from exc

    async def shutdown(self) -> None:
        if self._starter is not None:
            self._starter.cancel()
            await asyncio.gather(self._starter, return_exceptions=True)
        if self.intake is not None:
            await self.intake.stop()
        if self.consumer is not None:
            try:
                await asyncio.wait_for(self.consumer.stop(), 30)
            except Exception as exc:  # leaving the group is best effort: the session times out anyway
                log.warning("closing the Kafka consumer: %s", exc)
        if self.intake is not None:
            c = self.intake.counts
            log.info(
                "Kafka source stopped: %d consumed, %d published, %d dead-lettered, %d commits",
                c.consumed,
                c.published,
                c.dead_lettered,
                c.commits,
            )

    def _fail(self, reason: str) -> None:
        if self._context is not None:
            self._context.fail(Fatal(reason))

    def _bootstrap(self) -> str:
        return self.settings.bootstrap_servers if self.settings is not None else "?"


def _is_auth_error(exc: BaseException) -> bool:
    name = type(exc).__name__
    return "Authentication" in name or "Authorization" in name or "SaslAuthentication" in str(exc)


async def _refusal(s: KafkaSettings, config: ConnectorConfig | None) -> str | None:
    """Why Kafka refuses this client for good (credentials, TLS), or None when it is only unreachable.

    aiokafka's ``start()`` reports every bootstrap failure as "unable to bootstrap"; one connection made
    here with the same settings tells a refused login (fatal) from a cluster that is down (retried).
    """
    host, _, port = s.bootstrap_servers.split(",")[0].strip().rpartition(":")
    kwargs: dict[str, Any] = {
        "security_protocol": s.effective_protocol,
        "ssl_context": _ssl_context(s, config),
        "request_timeout_ms": min(s.request_timeout_ms, 10_000),
    }
    if s.sasl is not None:
        kwargs["sasl_mechanism"] = s.sasl.mechanism
        kwargs["sasl_plain_username"] = s.sasl.username
        kwargs["sasl_plain_password"] = s.sasl.password.get_secret_value()
    try:
        conn = await create_conn(host, int(port), **kwargs)
    except ssl.SSLError as exc:
        return f"TLS to Kafka at {s.bootstrap_servers} failed: {exc}"
    except (KafkaError, OSError, TimeoutError, ValueError) as exc:
        if _is_auth_error(exc):
            return f"Kafka refused the credentials of {s.sasl.username if s.sasl else 'this client'}: {exc}"
        return None
    conn.close()
    return None


def _ssl_context(s: KafkaSettings, config: ConnectorConfig | None) -> ssl.SSLContext | None:
    if not s.effective_protocol.endswith("SSL"):
        return None
    tls = s.tls
    try:
        if tls is None:
            return create_ssl_context()  # type: ignore[no-any-return]
        context = create_ssl_context(
            cafile=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            password=tls.key_password.get_secret_value() if tls.key_password else None,
        )
    except (OSError, ssl.SSLError) as exc:
        source = config.source_file if config is not None else None
        raise ConfigError(f"cannot load TLS files: {exc}", file=source, key="kafka.tls") from None
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context  # type: ignore[no-any-return]


def _consumer(s: KafkaSettings, config: ConnectorConfig) -> AIOKafkaConsumer:
    """The aiokafka consumer for ``s`` (auto-commit off, the start position as ``auto_offset_reset``)."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": s.bootstrap_servers,
        "group_id": s.group_id or config.connector_name,
        "client_id": s.client_id or config.connector_name,
        "enable_auto_commit": False,
        "auto_offset_reset": "none" if s.start_position == "committed" else s.start_position,
        "max_poll_records": s.max_poll_records,
        "session_timeout_ms": s.session_timeout_ms,
        "heartbeat_interval_ms": s.heartbeat_interval_ms,
        "max_poll_interval_ms": s.max_poll_interval_ms,
        "rebalance_timeout_ms": s.max_poll_interval_ms,
        "metadata_max_age_ms": s.metadata_max_age_ms,
        "request_timeout_ms": s.request_timeout_ms,
        "security_protocol": s.effective_protocol,
        "ssl_context": _ssl_context(s, config),
    }
    if s.sasl is not None:
        kwargs["sasl_mechanism"] = s.sasl.mechanism
        kwargs["sasl_plain_username"] = s.sasl.username
        kwargs["sasl_plain_password"] = s.sasl.password.get_secret_value()
    return AIOKafkaConsumer(**kwargs)


def _producer_configs(s: KafkaSettings, config: ConnectorConfig) -> list[ProducerConfig]:
    """One producer per Danube topic (mappings sharing a topic must agree) plus the dead-letter topic."""
    by_topic: dict[str, ProducerConfig] = {}
    for i, m in enumerate(s.topic_mappings):
        pc = ProducerConfig(m.danube_topic, partitions=m.partitions, reliable_dispatch=m.reliable_dispatch)
        seen = by_topic.setdefault(m.danube_topic, pc)
        if seen != pc:
            raise ConfigError(
                f"{m.danube_topic} is mapped more than once with different partitions or reliable_dispatch",
                file=config.source_file,
                key=f"kafka.topic_mappings[{i}]",
            )
    dlq = config.dead_letter_topic
    if dlq not in by_topic:
        by_topic[dlq] = ProducerConfig(dlq, reliable_dispatch=True)
    return list(by_topic.values())


def main() -> None:
    connector_main(KafkaSource)
