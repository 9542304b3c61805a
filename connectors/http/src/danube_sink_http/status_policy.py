"""What an HTTP status means for a delivery: done, dead-letter it, retry it, or stop.

Order: ``success_codes`` -> delivered; ``drop_codes`` -> dead letter (poison, invariant 5);
408, 429 and 5xx except 501 -> retry (an outage or overload is not poison, invariant 5);
401, 403, 407 -> fatal (credentials: nothing will succeed until the configuration changes);
any other 4xx and 501 -> dead letter; anything else (1xx, 3xx: redirects are not followed) -> fatal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

__all__ = ["Outcome", "StatusPolicy"]

Outcome = Literal["success", "drop", "retry", "fatal"]

_FATAL = frozenset({401, 403, 407})


class StatusPolicy:
    def __init__(self, success_codes: Iterable[int], drop_codes: Iterable[int]) -> None:
        self.success = frozenset(success_codes)
        self.drop = frozenset(drop_codes)

    @staticmethod
    def retryable(status: int) -> bool:
        return status in (408, 429) or (500 <= status <= 599 and status != 501)

    def outcome(self, status: int) -> Outcome:
        if status in self.success:
            return "success"
        if status in self.drop:
            return "drop"
        if self.retryable(status):
            return "retry"
        if status in _FATAL:
            return "fatal"
        if 400 <= status <= 499 or status == 501:
            return "drop"
        return "fatal"
