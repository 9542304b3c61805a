"""What a source asks of one destination topic."""

from __future__ import annotations

from dataclasses import dataclass

from danube_connect_core.config import SchemaMapping

__all__ = ["ProducerConfig"]


@dataclass(frozen=True, slots=True)
class ProducerConfig:
    """One destination topic of a source connector.

    ``partitions`` None publishes to a non-partitioned topic. ``reliable_dispatch`` asks the broker to store
    messages durably before acknowledging. ``schema_config`` is filled by the runtime from ``[[schemas]]``
    when left None. ``max_in_flight`` overrides ``processing.max_in_flight`` for this topic.
    """

    topic: str
    partitions: int | None = None
    reliable_dispatch: bool = False
    schema_config: SchemaMapping | None = None
    max_in_flight: int | None = None
