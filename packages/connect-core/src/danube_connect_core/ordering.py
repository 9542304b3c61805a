"""Ordering lanes: records with the same ordering key are published one after the other, in hand-over order.

The broker stores two publishes in flight at once in either order, so the delivery pipeline
(:mod:`danube_connect_core.source_pipeline`) sends a record with an ordering key only once the record of
the same key handed over before it *settled*: acknowledged by the broker, or its dead letter acknowledged.
Records of different keys, and records without one, do not wait for each other.

A lane is a queue per key that exists while a record of that key is inside the pipeline:

- ``lanes.turn(key)`` is an async context manager. Entering joins the key's queue synchronously (so the
  queue order is the order in which the pipeline called it, with no await before) and then waits for the
  record's turn; leaving hands the turn to the next record of the key.
- A record that leaves its turn without having settled (its publish failed for good, the runtime refused
  it, its send was cancelled after its turn came) breaks the lane: the records waiting behind it are not
  sent, each raises :class:`~danube_connect_core.errors.ShuttingDown` when the failure was a shutdown
  refusal, else :class:`~danube_connect_core.errors.Retryable`, and passes the failure on. So no record of
  a key reaches the broker after an earlier one of that key that did not. A record whose send is
  cancelled while it waits for its turn leaves its place; the records behind it are unaffected.
- A key without records inside the pipeline has no lane (no state grows with the number of keys seen).
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType
from typing import Final

from danube_connect_core.errors import Retryable, ShuttingDown

__all__ = ["OrderingLanes"]

#: What a turn carries: None when the record before settled, else the failure that ended it.
_Turn = asyncio.Future[BaseException | None]


class OrderingLanes:
    """The lanes of one pipeline, by ordering key."""

    def __init__(self) -> None:
        #: key -> the turns of the records waiting behind the one that holds the key.
        self._lanes: dict[str, deque[_Turn]] = {}

    def turn(self, key: str | None) -> _Place | _NoLane:
        """Context manager holding ``key``'s turn for one record (nothing to wait for when key is None)."""
        return _NO_LANE if key is None else _Place(self, key)

    @property
    def keys(self) -> int:
        """Ordering keys with a record inside the pipeline."""
        return len(self._lanes)

    def _join(self, key: str) -> _Turn | None:
        lane = self._lanes.get(key)
        if lane is None:
            self._lanes[key] = deque()
            return None  # nothing of this key inside: its turn is now
        turn: _Turn = asyncio.get_running_loop().create_future()
        lane.append(turn)
        return turn

    def _pass_on(self, key: str, failure: BaseException | None) -> None:
        lane = self._lanes[key]
        while lane:
            turn = lane.popleft()
            if not turn.done():  # a cancelled waiter's turn is cancelled: skipped
                turn.set_result(failure)
                return
        del self._lanes[key]


class _Place:
    __slots__ = ("_key", "_lanes", "_turn")

    def __init__(self, lanes: OrderingLanes, key: str) -> None:
        self._lanes = lanes
        self._key = key
        self._turn: _Turn | None = None

    async def __aenter__(self) -> None:
        turn = self._turn = self._lanes._join(self._key)
        if turn is None:
            return
        try:
            before = await turn
        except asyncio.CancelledError as cancelled:
            # Cancelled while waiting: its turn is cancelled and _leave passes nothing on. Cancelled as the
            # turn came (the turn is done): it holds the turn but is never sent, so the lane breaks.
            self._leave(cancelled)
            raise
        if before is not None:
            broken = _broken(self._key, before)
            self._leave(broken)
            raise broken

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._leave(exc)

    def _leave(self, failure: BaseException | None) -> None:
        turn = self._turn
        if turn is None or not turn.cancelled():  # it held the turn: hand it on
            self._lanes._pass_on(self._key, failure)


def _broken(key: str, before: BaseException) -> Retryable:
    if isinstance(before, ShuttingDown):
        return ShuttingDown("connector is shutting down: not accepting records", retry_after=1.0)
    what = "cancelled" if isinstance(before, asyncio.CancelledError) else f"{type(before).__name__}: {before}"
    return Retryable(
        f"not sent: the record before it with ordering key {key!r} was not published ({what})",
        retry_after=getattr(before, "retry_after", None),
    )


class _NoLane:
    """A record without an ordering key waits for nobody."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


_NO_LANE: Final = _NoLane()
