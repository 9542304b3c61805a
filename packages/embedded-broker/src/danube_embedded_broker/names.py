"""Topic names: ``/namespace/topic``, partitions ``/namespace/topic-part-N``, dead-letter topics."""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc

from danube_embedded_broker.errors import BrokerError

_PART_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_PARTITION_SUFFIX_RE = re.compile(r"-part-(\d+)$")


@dataclass(frozen=True)
class TopicName:
    """A validated topic name."""

    namespace: str
    local: str

    @property
    def full(self) -> str:
        return f"/{self.namespace}/{self.local}"

    def __str__(self) -> str:
        return self.full


def parse_topic(name: str) -> TopicName:
    """Validate ``/namespace/topic``; raises ``BrokerError(INVALID_ARGUMENT)`` when malformed.

    Splitting on ``/`` must give exactly three parts (the first empty), and namespace and topic use
    only letters, digits, ``_`` and ``-``.
    """
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "" or not _PART_RE.match(parts[1]) or not _PART_RE.match(parts[2]):
        raise BrokerError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"invalid topic name {name!r}: expected /namespace/topic using letters, digits, '_' and '-'",
        )
    return TopicName(parts[1], parts[2])


def partition_index(base: str, candidate: str) -> int | None:
    """N when ``candidate`` is exactly ``<base>-part-N``, else ``None``."""
    if not candidate.startswith(base):
        return None
    match = _PARTITION_SUFFIX_RE.fullmatch(candidate[len(base) :])
    return int(match.group(1)) if match else None


def dead_letter_topic(topic: str, suffix: str) -> str:
    """Name of the dead-letter topic of ``topic``."""
    return f"{topic}{suffix}"
