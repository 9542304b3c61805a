"""MqttSource: MQTT topics to Danube topics, QoS 1/2 acknowledged only after Danube stored the message.

Streaming source. ``initialize`` validates the mappings and opens the MQTT connection (a persistent
session may start delivering at once: those messages wait, bounded, until the producers exist);
``start_streaming`` hands the sender to the intake; the session reports every change of the MQTT
connection through ``RuntimeContext.set_ready`` (so the core's /ready is 200 only with both MQTT and
Danube connected); ``health_check`` fails while MQTT is disconnected too and raises Fatal after a fatal
error (refused credentials or subscription, Danube publish retries exhausted): the runtime exits 1.
``shutdown`` stops intake, lets publishes on the wire finish and acknowledges them, then disconnects.
See :mod:`danube_source_mqtt.intake` for the delivery guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import ClassVar

from danube_connect_core import (
    ConfigError,
    ConnectorConfig,
    Fatal,
    ProducerConfig,
    SourceConnector,
    SourceMode,
    SourceSender,
    connector_main,
)

from danube_source_mqtt.connection import build_tls_context
from danube_source_mqtt.intake import Intake
from danube_source_mqtt.payload import read_format
from danube_source_mqtt.router import Route, Router
from danube_source_mqtt.session import MqttSession
from danube_source_mqtt.settings import MqttSettings
from danube_source_mqtt.tls_errors import TlsRefused

__all__ = ["MqttSource", "main"]

log = logging.getLogger("danube_connect.mqtt")


class MqttSource(SourceConnector):
    """MQTT source: subscribes to MQTT topic filters and publishes each message to a Danube topic."""

    name = "mqtt"
    config_section = "mqtt"
    settings_model = MqttSettings
    env_overrides: ClassVar[dict[str, str]] = {
        "MQTT_BROKER_HOST": "broker_host",
        "MQTT_BROKER_PORT": "broker_port",
        "MQTT_USERNAME": "username",
        "MQTT_PASSWORD": "password",
        "MQTT_CLIENT_ID": "client_id",
    }
    mode = SourceMode.STREAMING

    def __init__(self) -> None:
        self.settings: MqttSettings | None = None
        self.config: ConnectorConfig | None = None
        self.intake: Intake | None = None
        self.session: MqttSession | None = None
        self._producers: list[ProducerConfig] = []

    async def initialize(self, config: ConnectorConfig) -> None:
        s = config.settings_as(MqttSettings)
        self.settings, self.config = s, config
        self._producers = _producer_configs(s, config)
        routes = []
        for m in s.topic_mappings:
            schema = config.schema_for(m.danube_topic)
            routes.append(
                Route(
                    m, m.topic_filter, read_format(schema.schema_type if schema else None, m.payload_format)
                )
            )
        try:
            tls = build_tls_context(s)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load TLS files: {exc}", file=config.source_file, key="mqtt.tls"
            ) from None
        router = Router(routes)
        self.intake = Intake(router, max_pending=s.max_pending_messages)
        client_id = s.client_id or config.connector_name
        try:  # the connection state goes straight into the core's readiness
            on_state = self.runtime_context.set_ready
        except RuntimeError:  # not run by a runtime (a unit test): health_check() still tells
            on_state = None
        self.session = MqttSession(s, client_id, self.intake, tls, router.identifiers, on_state)
        self.session.start()
        # Wait for the first attempt so /ready is right from the start; an unreachable broker is not an
        # error here (the session keeps retrying), refused credentials are.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.session.first_attempt.wait(), s.connect_timeout_s + 1)
        fatal = self.session.fatal
        if isinstance(fatal, TlsRefused):
            # A certificate problem on the first connection: the configuration (or the broker's
            # certificate) must change; restarting cannot help (exit 2).
            raise ConfigError(str(fatal), file=config.source_file, key=fatal.key)
        if fatal is not None:
            raise Fatal(str(fatal))

    async def producer_configs(self) -> list[ProducerConfig]:
        return list(self._producers)

    async def start_streaming(self, sender: SourceSender) -> None:
        assert self.intake is not None
        self.intake.on_fatal = self.runtime_context.fail
        self.intake.start(sender)

    async def health_check(self) -> None:
        if self.session is None or self.intake is None:
            raise RuntimeError("not initialised")
        for fatal in (self.session.fatal, self.intake.fatal):
            if fatal is not None:
                raise Fatal(str(fatal))
        if not self.session.connected:
            raise ConnectionError(f"MQTT: {self.session.detail}")

    async def shutdown(self) -> None:
        if self.intake is not None:
            await self.intake.shutdown(within=10.0)
        if self.session is not None:
            await self.session.stop()
        if self.intake is not None:
            log.info(
                "MQTT source stopped: %d received, %d published, %d dead-lettered",
                self.intake.received,
                self.intake.published,
                self.intake.dead_lettered,
            )


def _producer_configs(s: MqttSettings, config: ConnectorConfig) -> list[ProducerConfig]:
    """One producer per Danube topic (mappings sharing a topic must agree)."""
    by_topic: dict[str, ProducerConfig] = {}
    for i, m in enumerate(s.topic_mappings):
        pc = ProducerConfig(m.danube_topic, partitions=m.partitions, reliable_dispatch=m.reliable_dispatch)
        seen = by_topic.setdefault(m.danube_topic, pc)
        if seen != pc:
            raise ConfigError(
                f"{m.danube_topic} is mapped more than once with different partitions or reliable_dispatch",
                file=config.source_file,
                key=f"mqtt.topic_mappings[{i}]",
            )
    return list(by_topic.values())


def main() -> None:
    connector_main(MqttSource)
