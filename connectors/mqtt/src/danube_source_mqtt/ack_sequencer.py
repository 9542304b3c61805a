"""Acknowledge QoS 1/2 messages in the order they arrived, once each is safely in Danube.

MQTT requires PUBACK (QoS 1) and PUBREC (QoS 2) in the order of the PUBLISH packets. Publishes to Danube
complete out of order (several topics and partitions in flight), so an ack waits until every earlier
message of the same connection is done too. A message that could not be published is never marked done:
it blocks the acks after it, and the broker redelivers all of them on the next connection (at-least-once,
invariant 1). The sequencer belongs to one connection; when that connection is gone, acks are dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AckSequencer", "AckTicket"]


@dataclass(eq=False, slots=True)
class AckTicket:
    mid: int
    qos: int
    done: bool = False


class AckSequencer:
    """``send_ack(mid, qos)`` is called for a ticket once it and every ticket before it are done."""

    def __init__(self, send_ack: Callable[[int, int], None]) -> None:
        self._send_ack = send_ack
        self._queue: deque[AckTicket] = deque()
        self.acked = 0

    def track(self, mid: int, qos: int) -> AckTicket:
        ticket = AckTicket(mid, qos)
        self._queue.append(ticket)
        return ticket

    def done(self, ticket: AckTicket) -> None:
        ticket.done = True
        queue = self._queue
        while queue and queue[0].done:
            head = queue.popleft()
            self._send_ack(head.mid, head.qos)
            self.acked += 1

    @property
    def waiting(self) -> int:
        """Tickets not acknowledged yet (done or not)."""
        return len(self._queue)
