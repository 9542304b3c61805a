"""The ``[mqtt]`` section of the connector's TOML file (validated strictly: unknown keys are errors).

Connection settings may be overridden from the environment (``MQTT_BROKER_HOST``, ``MQTT_BROKER_PORT``,
``MQTT_USERNAME``, ``MQTT_PASSWORD``, and ``MQTT_<FIELD>`` for the other top-level scalars). The password
is a secret (invariant 7): in TOML it can only name the environment variable that holds it
(``password = "MQTT_PASSWORD"``), and ``MQTT_PASSWORD`` itself always works.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from danube_connect_core import EnvSecret, PayloadFormat
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from danube_source_mqtt.topic_filter import TopicFilter

__all__ = ["MqttSettings", "PayloadFormat", "TlsSettings", "TopicMapping"]

_DANUBE_TOPIC = re.compile(r"^/[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Strict):
    """``[mqtt.tls]``: TLS to the MQTT broker; ``cert_file`` + ``key_file`` add a client certificate (mTLS).

    ``insecure = true`` disables certificate and hostname verification (tests only; off by default).
    """

    enabled: bool = True
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Name of the environment variable holding the key file's passphrase (if it has one).
    key_password: EnvSecret | None = None
    insecure: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate for mTLS)")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {path} is not a readable file")
        return self


class TopicMapping(_Strict):
    """``[[mqtt.topic_mappings]]``: one MQTT subscription and the Danube topic it feeds.

    ``qos`` is the subscription's maximum QoS. ``partitions`` > 1 publishes to a partitioned topic keyed by
    the MQTT topic; with one partition (or none) the order of each MQTT topic is kept. ``payload_format``
    decides how the payload is read when the Danube topic has no ``[[schemas]]`` entry (a schema's type
    wins): ``auto`` = JSON when it parses, else UTF-8 text, else bytes.
    """

    mqtt_topic: str
    danube_topic: str
    partitions: int | None = Field(default=None, ge=1)
    qos: Literal[0, 1, 2] = 1
    reliable_dispatch: bool = True
    payload_format: PayloadFormat = "auto"

    @field_validator("mqtt_topic")
    @classmethod
    def _filter(cls, value: str) -> str:
        TopicFilter.parse(value)
        return value

    @field_validator("danube_topic")
    @classmethod
    def _danube_topic(cls, value: str) -> str:
        if not _DANUBE_TOPIC.match(value):
            raise ValueError("must be /<namespace>/<topic>")
        return value

    @property
    def topic_filter(self) -> TopicFilter:
        return TopicFilter.parse(self.mqtt_topic)

    @property
    def ordered(self) -> bool:
        """One partition: messages of each MQTT topic are published one after the other, in order."""
        return (self.partitions or 1) == 1


class MqttSettings(_Strict):
    """``[mqtt]``: the MQTT broker connection and the topic mappings.

    ``clean_session = false`` (the default) asks for a persistent session: the broker keeps the
    subscriptions and queues QoS 1/2 messages while the connector is away, and redelivers the ones it
    never acknowledged. With MQTT 5 that is ``clean_start = false`` plus ``session_expiry_s``.
    """

    broker_host: str = "localhost"
    broker_port: int = Field(default=1883, ge=1, le=65535)
    #: Default: the connector_name. A persistent session is found again by its client id, so it must be
    #: stable across restarts and unique per running instance.
    client_id: str | None = None
    username: str | None = None
    #: The name of the environment variable holding the password (``MQTT_PASSWORD`` always works).
    #: Typed without ``| None`` so the core loader recognises it as a secret; empty = no password.
    password: EnvSecret = Field(default=SecretStr(""))
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    #: Seconds between keep-alive pings (0 disables them).
    keep_alive: int = Field(default=60, ge=0, le=65535)
    clean_session: bool = False
    #: MQTT 5: how long the broker keeps the session after a disconnect (0xFFFFFFFF = never expires).
    session_expiry_s: int = Field(default=3600, ge=0, le=0xFFFFFFFF)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    reconnect_min_delay_ms: int = Field(default=500, ge=1)
    reconnect_max_delay_ms: int = Field(default=30_000, ge=1)
    #: Messages received and not yet acknowledged by Danube; reading from MQTT pauses at this number
    #: (invariant 3). MQTT 5 also announces it to the broker as Receive Maximum (QoS 1/2 in flight).
    max_pending_messages: int = Field(default=1000, ge=1, le=65535)
    tls: TlsSettings | None = None
    topic_mappings: list[TopicMapping] = Field(min_length=1)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: object) -> object:
        text = str(value).strip().lower().removeprefix("v").removeprefix("mqttv")
        return {"5.0": "5", "311": "3.1.1", "3.1.1": "3.1.1", "5": "5"}.get(text, value)

    @model_validator(mode="after")
    def _check(self) -> MqttSettings:
        if self.reconnect_max_delay_ms < self.reconnect_min_delay_ms:
            raise ValueError("reconnect_max_delay_ms must be >= reconnect_min_delay_ms")
        seen: set[str] = set()
        for m in self.topic_mappings:
            if m.mqtt_topic in seen:
                raise ValueError(f"mqtt_topic {m.mqtt_topic!r} is mapped twice")
            seen.add(m.mqtt_topic)
        return self

    @property
    def password_value(self) -> str | None:
        return self.password.get_secret_value() or None

    def mapping_for(self, topic: str) -> TopicMapping | None:
        """The first mapping (in file order) whose filter matches ``topic``."""
        for m in self.topic_mappings:
            if m.topic_filter.matches(topic):
                return m
        return None
