"""How a subscription picks the consumer for a message: failover order, round robin, key hash ring."""

from __future__ import annotations

import bisect
import fnmatch
from collections.abc import Sequence

from danube_embedded_broker.consumer import Consumer

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF
#: virtual nodes per consumer on the KeyShared hash ring
VNODES = 64


def fnv1a_64(data: bytes) -> int:
    """FNV-1a 64-bit hash (the hash Danube clients use for key routing)."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return h


def key_matches(consumer: Consumer, key: str) -> bool:
    """A consumer without key filters takes every key; otherwise one of its globs must match."""
    return not consumer.key_filters or any(fnmatch.fnmatchcase(key, f) for f in consumer.key_filters)


class HashRing:
    """Consistent hash ring over consumer names; rebuilt only when the candidate set changes."""

    def __init__(self) -> None:
        self._members: tuple[int, ...] = ()
        self._points: list[int] = []
        self._owners: list[Consumer] = []

    def pick(self, candidates: Sequence[Consumer], key: str) -> Consumer | None:
        if not candidates:
            return None
        members = tuple(c.id for c in candidates)
        if members != self._members:
            ring = sorted(
                (fnv1a_64(f"{c.name}#{i}".encode()), c.id, c) for c in candidates for i in range(VNODES)
            )
            self._points = [p for p, _, _ in ring]
            self._owners = [c for _, _, c in ring]
            self._members = members
        index = bisect.bisect_left(self._points, fnv1a_64(key.encode()))
        return self._owners[index % len(self._owners)]


class RoundRobin:
    """Rotates over whatever candidates are current."""

    def __init__(self) -> None:
        self._next = 0

    def pick(self, candidates: Sequence[Consumer]) -> Consumer | None:
        if not candidates:
            return None
        consumer = candidates[self._next % len(candidates)]
        self._next = (self._next + 1) % (1 << 30)
        return consumer
