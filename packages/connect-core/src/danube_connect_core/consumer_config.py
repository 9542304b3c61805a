"""What a sink asks of one source topic: the consumer and its batching."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from danube_connect_core.subscription import SubscriptionType

__all__ = ["ConsumerConfig", "SinkTopicMapping"]


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """One subscription of a sink connector; the runtime runs one consumer and one batch per config.

    ``topic`` is the logical topic (partitions are transparent). ``expected_schema_subject``, when set,
    dead-letters messages published with another subject (or none). ``batch_size`` and
    ``flush_interval_ms`` default to ``processing.batch_size`` and ``processing.batch_timeout_ms``.
    ``mapping`` is any object the connector wants back with every batch of this subscription
    (:attr:`SinkBatch.mapping <danube_connect_core.sink_batch.SinkBatch.mapping>`), typically its
    settings entry or a prepared writer; the runtime never looks into it.
    """

    topic: str
    subscription: str
    subscription_type: SubscriptionType = SubscriptionType.SHARED
    consumer_name: str | None = None
    expected_schema_subject: str | None = None
    batch_size: int | None = None
    flush_interval_ms: int | None = None
    mapping: Any = field(default=None, compare=False)

    def name_for(self, connector_name: str) -> str:
        """The consumer name to subscribe with: ``consumer_name`` when configured, else a default.

        The broker takes a subscriber with a name it already knows for the same consumer reconnecting (it
        replaces it). Shared and KeyShared exist to spread messages over several instances, so there the
        default differs per running instance (``<connector>-<subscription>-<host>-<random>``: two replicas
        with one name would take each other's place and both receive the same messages). Exclusive and
        Failover keep one writer: their default stays ``<connector>-<subscription>``, so a restarted
        instance takes over from the one it replaces at once (Danube 0.15.1 never promotes a Failover
        standby, so a new name would wait forever behind a dead consumer).
        """
        if self.consumer_name:
            return self.consumer_name
        base = f"{connector_name}-{self.subscription}"
        if self.subscription_type in (SubscriptionType.EXCLUSIVE, SubscriptionType.FAILOVER):
            return base
        return f"{base}-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


class SinkTopicMapping(BaseModel):
    """The shared fields of a ``[[<sink>.topic_mappings]]`` entry; sinks subclass it with target fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    subscription: str
    subscription_type: SubscriptionType = SubscriptionType.SHARED
    consumer_name: str | None = None
    expected_schema_subject: str | None = None
    batch_size: int | None = Field(default=None, ge=1)
    flush_interval_ms: int | None = Field(default=None, ge=1)
    include_metadata: bool = False

    @field_validator("subscription_type", mode="before")
    @classmethod
    def _parse_type(cls, value: object) -> object:
        try:
            return SubscriptionType(value)
        except ValueError:
            raise ValueError("must be one of Exclusive, Shared, Failover, KeyShared") from None

    def consumer_config(self, mapping: Any = None) -> ConsumerConfig:
        """The consumer config of this entry; its batches carry ``mapping`` (default: this entry)."""
        return ConsumerConfig(
            topic=self.topic,
            subscription=self.subscription,
            subscription_type=self.subscription_type,
            consumer_name=self.consumer_name,
            expected_schema_subject=self.expected_schema_subject,
            batch_size=self.batch_size,
            flush_interval_ms=self.flush_interval_ms,
            mapping=self if mapping is None else mapping,
        )
