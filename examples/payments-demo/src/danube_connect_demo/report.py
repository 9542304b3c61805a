"""What the demo prints: a plain-text progress bar and the count-by-event table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TextIO

__all__ = ["QUERY", "ProgressBar", "render_table"]

QUERY = "SELECT event, count() AS total FROM stripe_payments GROUP BY event"


class ProgressBar:
    """``[##########..........]  50/100`` redrawn in place on a terminal; on a pipe a line per 25%."""

    def __init__(self, total: int, out: TextIO, label: str = "", width: int = 30) -> None:
        self.total = max(total, 1)
        self.out = out
        self.label = label
        self.width = width
        self.tty = out.isatty()
        self._last_quarter = -1

    def update(self, done: int) -> None:
        filled = self.width * done // self.total
        count = f"{done:>{len(str(self.total))}}/{self.total}"
        bar = f"{self.label}[{'#' * filled}{'.' * (self.width - filled)}] {count}"
        if self.tty:
            self.out.write("\r" + bar)
            if done >= self.total:
                self.out.write("\n")
            self.out.flush()
            return
        quarter = 4 * done // self.total
        if quarter != self._last_quarter and (quarter > 0 or done == 0):
            self._last_quarter = quarter
            self.out.write(bar + "\n")
            self.out.flush()


def render_table(groups: Sequence[Mapping[str, Any]], total: int) -> str:
    """The rows of the GROUP BY query as an aligned table with a total line."""
    rows = sorted(((str(g.get("event")), int(g["total"])) for g in groups), key=lambda r: r[0])
    width = max([len("event"), len("total"), *(len(e) for e, _ in rows)])
    lines = [f"  {'event':<{width}}  {'total':>5}", f"  {'-' * width}  {'-' * 5}"]
    lines += [f"  {event:<{width}}  {count:>5}" for event, count in rows]
    lines += [f"  {'-' * width}  {'-' * 5}", f"  {'all events':<{width}}  {total:>5}"]
    return "\n".join(lines)
