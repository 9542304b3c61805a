"""The ``[kafka]`` section of the connector's TOML file (validated strictly: unknown keys are errors).

Connection settings may be overridden from the environment: ``KAFKA_BOOTSTRAP_SERVERS``,
``KAFKA_GROUP_ID``, ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_MECHANISM``, ``KAFKA_SASL_USERNAME`` and
``KAFKA_SASL_PASSWORD``. The SASL password is a secret (invariant 7): in TOML it can only name the
environment variable that holds it (``password = "KAFKA_SASL_PASSWORD"``), and ``KAFKA_SASL_PASSWORD``
itself always works; it is never logged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from danube_connect_core import EnvSecret, PayloadFormat
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = [
    "KafkaSettings",
    "PayloadFormat",
    "SaslSettings",
    "StartPosition",
    "TlsSettings",
    "TopicMapping",
]

#: Where a partition starts when the group has no committed offset for it: ``earliest`` / ``latest``
#: (Kafka's ``auto.offset.reset``), or ``committed``: only from a committed offset, a partition without
#: one is an error (the connector stops) — for a migration that must continue exactly where the old
#: consumers of the group stopped.
StartPosition = Literal["earliest", "latest", "committed"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
Ordering = Literal["key", "partition", "none"]

_DANUBE_TOPIC = re.compile(r"^/[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")
#: Kafka's own rule for topic names.
_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SaslSettings(_Strict):
    """``[kafka.sasl]``: SASL authentication (PLAIN or SCRAM) with a user name and password."""

    mechanism: SaslMechanism = "PLAIN"
    username: str = Field(min_length=1)
    #: The name of the environment variable holding the password (``KAFKA_SASL_PASSWORD`` always works).
    password: EnvSecret = Field(default=SecretStr(""))

    @field_validator("mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class TlsSettings(_Strict):
    """``[kafka.tls]``: TLS to the brokers; ``cert_file`` + ``key_file`` add a client certificate (mTLS).

    ``insecure = true`` disables certificate and host name verification (tests only; off by default).
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Name of the environment variable holding the key file's passphrase (if it has one).
    key_password: EnvSecret | None = None
    insecure: bool = False

    @model_validator(mode="after")
    def _files(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate for mTLS)")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {path} is not a readable file")
        return self


class TopicMapping(_Strict):
    """``[[kafka.topic_mappings]]``: Kafka topics (one name, or a regular expression) -> one Danube topic.

    ``kafka_pattern`` is a Python regular expression matched against the whole topic name; topics created
    later that match are picked up at the consumer's next metadata refresh. ``partitions`` > 1 publishes
    to a partitioned Danube topic: the Kafka key chooses the partition, so the order per key is kept.
    ``payload_format`` decides how values are read when the Danube topic has no ``[[schemas]]`` entry (a
    schema's type wins): ``auto`` = JSON when it parses, else UTF-8 text, else bytes; ``bytes`` = passed
    through untouched.
    """

    kafka_topic: str | None = None
    kafka_pattern: str | None = None
    danube_topic: str
    partitions: int | None = Field(default=None, ge=1)
    reliable_dispatch: bool = True
    payload_format: PayloadFormat = "bytes"

    @field_validator("kafka_topic")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        if value is not None and not _KAFKA_TOPIC.match(value):
            raise ValueError("not a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")
        return value

    @field_validator("kafka_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @field_validator("danube_topic")
    @classmethod
    def _danube_topic(cls, value: str) -> str:
        if not _DANUBE_TOPIC.match(value):
            raise ValueError("must be /<namespace>/<topic>")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TopicMapping:
        if (self.kafka_topic is None) == (self.kafka_pattern is None):
            raise ValueError("set exactly one of kafka_topic and kafka_pattern")
        return self

    def matches(self, topic: str) -> bool:
        if self.kafka_topic is not None:
            return topic == self.kafka_topic
        assert self.kafka_pattern is not None
        return re.fullmatch(self.kafka_pattern, topic) is not None


class KafkaSettings(_Strict):
    """``[kafka]``: the Kafka cluster, the consumer group and the topic mappings.

    Offsets are committed to the group only for records Danube acknowledged (or dead-lettered), in order
    per partition, and before partitions are handed to another member in a rebalance. Auto-commit is
    always off.
    """

    bootstrap_servers: str = Field(min_length=1)
    #: Default: the connector_name. Instances sharing it split the partitions between them.
    group_id: str | None = None
    client_id: str | None = None
    start_position: StartPosition = "earliest"
    security_protocol: SecurityProtocol | None = None
    sasl: SaslSettings | None = None
    tls: TlsSettings | None = None
    #: Records fetched per poll (the consumer's max_poll_records).
    max_poll_records: int = Field(default=500, ge=1, le=100_000)
    #: Fetching pauses while ``max_poll_records x max_batches_in_flight`` records are held (fetched and
    #: not yet acknowledged by Danube; invariant 3).
    max_batches_in_flight: int = Field(default=4, ge=1, le=1000)
    #: ``key``: a record is published after the previous one with its key was acknowledged (order per
    #: key; keyless records go concurrently); ``partition``: one record in flight per Kafka partition
    #: (the partition's order, slower); ``none``: all concurrently (fastest, no order).
    ordering: Ordering = "key"
    session_timeout_ms: int = Field(default=45_000, ge=1000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    #: How long a member may take between polls, and so also the longest a rebalance waits for records
    #: of revoked partitions to be acknowledged by Danube before their offsets are committed.
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    #: Metadata refresh interval: how soon a new topic matching ``kafka_pattern`` is consumed.
    metadata_max_age_ms: int = Field(default=30_000, ge=100)
    request_timeout_ms: int = Field(default=40_000, ge=1000)
    topic_mappings: list[TopicMapping] = Field(min_length=1)

    @field_validator("security_protocol", mode="before")
    @classmethod
    def _protocol(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> KafkaSettings:
        protocol = self.effective_protocol
        if protocol.startswith("SASL") and self.sasl is None:
            raise ValueError(f"security_protocol {protocol} needs a [kafka.sasl] table")
        if not protocol.startswith("SASL") and self.sasl is not None:
            raise ValueError(
                f"[kafka.sasl] needs security_protocol SASL_PLAINTEXT or SASL_SSL, not {protocol}"
            )
        if not protocol.endswith("SSL") and self.tls is not None:
            raise ValueError(f"[kafka.tls] needs security_protocol SSL or SASL_SSL, not {protocol}")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be below session_timeout_ms")
        seen: set[str] = set()
        for m in self.topic_mappings:
            source = m.kafka_topic or f"pattern {m.kafka_pattern}"
            if source in seen:
                raise ValueError(f"{source!r} is mapped twice")
            seen.add(source)
        return self

    @property
    def effective_protocol(self) -> SecurityProtocol:
        """The protocol in use: as set, else SASL_SSL/SASL_PLAINTEXT/SSL/PLAINTEXT by what is configured."""
        if self.security_protocol is not None:
            return self.security_protocol
        if self.sasl is not None:
            return "SASL_SSL" if self.tls is not None else "SASL_PLAINTEXT"
        return "SSL" if self.tls is not None else "PLAINTEXT"

    def mapping_for(self, topic: str) -> TopicMapping | None:
        """The first mapping (file order) for ``topic``: a name mapping wins over a pattern."""
        for m in self.topic_mappings:
            if m.kafka_topic == topic:
                return m
        for m in self.topic_mappings:
            if m.kafka_pattern is not None and m.matches(topic):
                return m
        return None
