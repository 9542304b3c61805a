"""Which source offsets may be committed: only those whose record, and every record handed over before it
with an offset in the same offset partition, has been acknowledged by the broker (invariant 1).

Acks may arrive out of order (several partitions and producers in flight); the tracker releases an
offset only when the contiguous prefix before it is complete. A record that failed to publish blocks its
partition for good: on restart the source replays from the last committed offset.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from danube_connect_core.records import Offset

__all__ = ["OffsetTracker", "Ticket"]


@dataclass(eq=False)
class Ticket:
    offset: Offset
    done: bool = False


@dataclass
class OffsetTracker:
    _pending: dict[str, deque[Ticket]] = field(default_factory=dict)
    _ready: dict[str, Offset] = field(default_factory=dict)

    def track(self, offset: Offset) -> Ticket:
        """Register an offset in hand-over order; mark the returned ticket done once acknowledged."""
        ticket = Ticket(offset)
        self._pending.setdefault(offset.partition, deque()).append(ticket)
        return ticket

    def done(self, ticket: Ticket) -> None:
        """The ticket's record is acknowledged (or was rejected as invalid and will never be published)."""
        ticket.done = True
        queue = self._pending.get(ticket.offset.partition)
        while queue and queue[0].done:
            self._ready[ticket.offset.partition] = queue.popleft().offset

    def take_committable(self) -> list[Offset]:
        """The newest committable offset of each partition since the last call (empty when none)."""
        out = sorted(self._ready.values())
        self._ready.clear()
        return out

    def pending(self) -> int:
        return sum(len(q) for q in self._pending.values())
