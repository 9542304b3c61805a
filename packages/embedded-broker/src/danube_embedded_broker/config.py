"""Broker configuration: one frozen dataclass shared by the in-process API and the CLI.

The knobs mirror the real Danube broker's configuration (``dispatch.max_unacked_messages``, the
subscription failure policy, ``auto_create_topics``, bootstrap namespaces, ``max_message_size``), so a
test tuned against the embedded broker behaves the same against a real cluster.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

PoisonPolicy = Literal["block", "drop", "dead_letter"]
FsyncPolicy = Literal["always", "interval", "never"]

POISON_POLICIES: tuple[str, ...] = ("block", "drop", "dead_letter")
FSYNC_POLICIES: tuple[str, ...] = ("always", "interval", "never")

#: Namespaces that exist on every broker, whatever ``namespaces`` says (as on a real Danube broker).
BUILTIN_NAMESPACES: tuple[str, ...] = ("default", "system")


@dataclass(frozen=True)
class BrokerConfig:
    """Everything an :class:`~danube_embedded_broker.EmbeddedBroker` needs to start.

    Attributes:
        host: interface the gRPC server binds (``0.0.0.0`` is advertised as ``127.0.0.1``).
        port: gRPC port; ``0`` picks a free one (read it back from ``broker.port``).
        data_dir: where reliable topic logs and subscription cursors live. ``None`` means a temporary
            directory that is removed on stop (reliable dispatch still works, but nothing survives).
        namespaces: namespaces to create at start; ``default`` and ``system`` always exist.
        max_unacked_messages: in-flight window per reliable subscription.
        ack_timeout_ms: a delivered reliable message not acked within this time is redelivered.
        redelivery_base_ms / redelivery_max_ms: exponential backoff ``base * 2**(attempt-1)`` capped at max.
        max_redeliveries: after this many redeliveries a failing message is poison (see ``poison_policy``).
        poison_policy: ``block`` (stop the subscription), ``drop``, or ``dead_letter`` (to ``<topic>-dlq``).
        auto_create_topics: create topics on CreateProducer (Subscribe never creates).
        max_message_bytes: largest accepted payload; larger sends fail with INVALID_ARGUMENT.
        auth_secret: HS256 secret; when set every RPC needs ``authorization: Bearer <jwt>``.
        metrics_port: Prometheus exporter port (``0`` picks a free one); ``None`` disables it.
        fsync: ``always`` (fsync per append/ack), ``interval`` (every ``fsync_interval_ms``), ``never``.
            Every append is a ``write()`` either way, so data survives a kill of the broker process;
            fsync only matters for a crash of the whole machine.
        fsync_interval_ms: period of the background fsync under ``interval``.
        consumer_buffer: per-consumer buffer of a non-reliable subscription (messages beyond it are dropped).
        dead_letter_suffix: dead-letter topic name is ``<topic><suffix>``.
        subscribe_grace_ms: an Exclusive subscription stays owned by a consumer that subscribed but has not
            opened its stream yet for this long.
        advertised_url: URL returned by TopicLookup; default ``http://<host>:<port>``.
    """

    host: str = "127.0.0.1"
    port: int = 0
    data_dir: Path | None = None
    namespaces: tuple[str, ...] = ("default",)
    max_unacked_messages: int = 10
    ack_timeout_ms: int = 30_000
    redelivery_base_ms: int = 1_000
    redelivery_max_ms: int = 60_000
    max_redeliveries: int = 5
    poison_policy: PoisonPolicy = "block"
    auto_create_topics: bool = True
    max_message_bytes: int = 10 * 1024 * 1024
    auth_secret: str | None = field(default=None, repr=False)
    metrics_port: int | None = None
    fsync: FsyncPolicy = "interval"
    fsync_interval_ms: int = 1_000
    consumer_buffer: int = 1_000
    dead_letter_suffix: str = "-dlq"
    subscribe_grace_ms: int = 30_000
    advertised_url: str | None = None

    def __post_init__(self) -> None:
        if self.data_dir is not None and not isinstance(self.data_dir, Path):
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        if isinstance(self.namespaces, str | list):
            names = (self.namespaces,) if isinstance(self.namespaces, str) else tuple(self.namespaces)
            object.__setattr__(self, "namespaces", names)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        if self.poison_policy not in POISON_POLICIES:
            raise ValueError(f"poison_policy must be one of {POISON_POLICIES}, got {self.poison_policy!r}")
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}, got {self.fsync!r}")
        positive = ("max_unacked_messages", "ack_timeout_ms", "redelivery_max_ms", "max_message_bytes")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        non_negative = (
            "port", "redelivery_base_ms", "max_redeliveries", "fsync_interval_ms", "consumer_buffer"
        )  # fmt: skip
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.metrics_port is not None and self.metrics_port < 0:
            raise ValueError(f"metrics_port must be >= 0, got {self.metrics_port!r}")

    @property
    def all_namespaces(self) -> tuple[str, ...]:
        """Configured namespaces plus the built-in ones, without duplicates, in a stable order."""
        return tuple(dict.fromkeys((*BUILTIN_NAMESPACES, *self.namespaces)))

    def replace(self, **changes: Any) -> BrokerConfig:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)
