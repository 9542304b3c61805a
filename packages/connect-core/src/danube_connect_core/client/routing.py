"""Partition naming and routing, identical to the official Danube clients (Rust, Go, Python).

Keyed messages must land on the same partition whichever client produced them, so the hash is FNV-1a
64-bit over the UTF-8 bytes of the key, modulo the partition count, with the standard constants.
"""

from __future__ import annotations

import re

FNV_OFFSET_BASIS_64 = 0xCBF29CE484222325
FNV_PRIME_64 = 0x100000001B3
_MASK_64 = 0xFFFFFFFFFFFFFFFF

PARTITION_SEPARATOR = "-part-"
#: How many keys' partitions a router remembers.
_KEYS_CACHED = 4096


def fnv1a_64(key: str) -> int:
    """FNV-1a 64-bit hash of ``key`` encoded as UTF-8."""
    h = FNV_OFFSET_BASIS_64
    for byte in key.encode("utf-8"):
        h ^= byte
        h = (h * FNV_PRIME_64) & _MASK_64
    return h


def partition_topic(topic: str, partition: int) -> str:
    """Name of partition ``partition`` of ``topic``: ``/ns/t-part-3``."""
    return f"{topic}{PARTITION_SEPARATOR}{partition}"


def partition_index(topic: str, candidate: str) -> int | None:
    """Partition number of ``candidate`` if it is exactly ``<topic>-part-<int>``, else None.

    The real broker answers TopicPartitions by raw string prefix, so ``/ns/t_v2`` or ``/ns/t-part-x`` may come
    back for ``/ns/t``: only exact partition names count.
    """
    prefix = topic + PARTITION_SEPARATOR
    if not candidate.startswith(prefix):
        return None
    suffix = candidate[len(prefix) :]
    if not _DIGITS.fullmatch(suffix):
        return None
    return int(suffix)


_DIGITS = re.compile(r"0|[1-9][0-9]*")


def filter_partitions(topic: str, names: list[str]) -> list[str]:
    """The topics a consumer of ``topic`` reads, from a TopicPartitions answer.

    Returns ``[topic]`` when the broker lists the plain topic itself, otherwise the exact
    ``<topic>-part-<int>`` names sorted by partition number (duplicates and look-alikes dropped).
    """
    if topic in names:
        return [topic]
    found: dict[int, str] = {}
    for name in names:
        index = partition_index(topic, name)
        if index is not None:
            found[index] = name
    return [found[i] for i in sorted(found)]


class PartitionRouter:
    """Chooses the partition of each message: FNV-1a of the key when given, round-robin otherwise.

    Round-robin starts at partition 0, like the official clients.
    """

    __slots__ = ("_by_key", "_next", "partitions")

    def __init__(self, partitions: int) -> None:
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self.partitions = partitions
        self._next = 0
        #: Recent keys' partitions: the hash is a Python loop per byte, and sources repeat their keys
        #: (customers, devices). Bounded: emptied when full.
        self._by_key: dict[str, int] = {}

    def route(self, key: str | None = None) -> int:
        if key is not None:
            partition = self._by_key.get(key)
            if partition is None:
                partition = fnv1a_64(key) % self.partitions
                if len(self._by_key) >= _KEYS_CACHED:
                    self._by_key.clear()
                self._by_key[key] = partition
            return partition
        index = self._next
        self._next = (index + 1) % self.partitions
        return index
