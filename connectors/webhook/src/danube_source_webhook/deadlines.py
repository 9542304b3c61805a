"""Request deadlines enforced by one periodic sweep instead of a timer per request.

``asyncio.timeout`` arms and cancels a loop timer for every request (a few microseconds each, and a heap
of cancelled timers under load). Here a request registers its task and deadline in a set; while any
request is registered, one sweep runs every ``tick`` seconds and cancels the tasks whose deadline passed.
The cancelled request sees ``CancelledError`` and asks :meth:`Deadline.expired` whether it was its own
deadline (answer as timed out) or a cancellation from elsewhere (let it propagate).

Failure semantics: a deadline fires at most one tick late (the tick is a tenth of the timeout, at most
one second); it never fires early. :meth:`Deadlines.leave` must run for every :meth:`Deadlines.enter`
(in a ``finally``): it also withdraws a cancellation the sweep requested, so the task (an aiohttp
connection's, serving further keep-alive requests) is not left cancelling.
"""

from __future__ import annotations

import asyncio

__all__ = ["Deadline", "Deadlines"]

MAX_TICK_S = 1.0


class Deadline:
    """One registered request: its task, its deadline on the loop's clock, and whether it expired."""

    __slots__ = ("at", "base", "expired_by_sweep", "task")

    def __init__(self, task: asyncio.Task[object], at: float) -> None:
        self.task = task
        self.at = at
        #: The task's cancellation count on entry: another cancellation on top of ours is not a timeout.
        self.base = task.cancelling()
        self.expired_by_sweep = False

    def expired(self) -> bool:
        """True when the CancelledError being handled is this deadline's and nothing else's."""
        return self.expired_by_sweep and self.task.cancelling() <= self.base + 1


class Deadlines:
    """The deadlines of one endpoint's requests (``timeout_s`` each), swept every ``tick`` seconds."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.tick_s = min(MAX_TICK_S, timeout_s / 10)
        self._pending: set[Deadline] = set()
        self._sweep: asyncio.TimerHandle | None = None

    def enter(self) -> Deadline:
        """Register the current task; its deadline is ``timeout_s`` from now."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadlines.enter() must be called from a task")
        loop = task.get_loop()
        entry = Deadline(task, loop.time() + self.timeout_s)
        self._pending.add(entry)
        if self._sweep is None:
            self._sweep = loop.call_at(loop.time() + self.tick_s, self._run_sweep, loop)
        return entry

    def leave(self, entry: Deadline) -> None:
        """Unregister ``entry``; withdraws the sweep's cancellation if it requested one."""
        self._pending.discard(entry)
        if entry.expired_by_sweep:
            entry.task.uncancel()

    def _run_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweep = None
        now = loop.time()
        for entry in list(self._pending):  # cancel() only schedules; a copy keeps this robust anyway
            if not entry.expired_by_sweep and entry.at <= now and entry.task.cancel():
                entry.expired_by_sweep = True
        if self._pending:
            self._sweep = loop.call_at(now + self.tick_s, self._run_sweep, loop)
