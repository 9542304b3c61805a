"""Which of a sink's topic mappings a record came through.

The runtime stamps every SinkRecord with its logical topic and subscription, and that pair names one
``[[<sink>.topic_mappings]]`` entry. Records built elsewhere (tests, replays from a file) may carry no
subscription: they fall back to the first mapping of their topic. A record no mapping claims is a
configuration bug, not bad data, so it is Fatal rather than dead-lettered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from danube_connect_core.errors import Fatal
from danube_connect_core.records import SinkRecord

__all__ = ["MappingIndex"]

M = TypeVar("M")


class MappingIndex(Generic[M]):
    """Finds the mapping object (any type the sink keeps per mapping) for a record or a batch."""

    def __init__(self) -> None:
        self._by_subscription: dict[tuple[str, str], M] = {}
        self._by_topic: dict[str, M] = {}

    def add(self, topic: str, subscription: str, mapping: M) -> None:
        self._by_subscription[(topic, subscription)] = mapping
        self._by_topic.setdefault(topic, mapping)

    def clear(self) -> None:
        self._by_subscription.clear()
        self._by_topic.clear()

    def for_record(self, record: SinkRecord) -> M:
        """The record's mapping; raises Fatal when its topic is not mapped at all."""
        mapping = self._by_subscription.get((record.topic, record.subscription))
        if mapping is None:
            mapping = self._by_topic.get(record.topic)
        if mapping is None:
            raise Fatal(f"no topic mapping for a record of {record.topic!r}")
        return mapping

    def group(self, records: Iterable[SinkRecord]) -> list[tuple[M, list[SinkRecord]]]:
        """The records split by mapping, each group in arrival order, groups in order of first record."""
        groups: dict[int, tuple[M, list[SinkRecord]]] = {}
        for record in records:
            mapping = self.for_record(record)
            groups.setdefault(id(mapping), (mapping, []))[1].append(record)
        return list(groups.values())
