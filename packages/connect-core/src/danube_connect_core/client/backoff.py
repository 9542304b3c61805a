"""Exponential backoff with jitter (the delay half of :class:`~.options.RetryPolicy`)."""

from __future__ import annotations

import random

from .options import RetryPolicy


def backoff_delay_s(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): uniform in ``[d/2, d]``.

    ``d`` doubles per attempt from ``base_backoff_ms`` and is capped at ``max_backoff_ms``. The random half
    spreads the reconnects of many clients after a broker restart ("equal jitter") while keeping a floor so
    a flapping broker is never hammered in a tight loop.
    """
    exp = min(attempt, 32)  # 2**32 * base already exceeds any sane cap; avoids huge ints
    ceiling = min(policy.max_backoff_ms, policy.base_backoff_ms * (1 << exp)) / 1000.0
    r = (rng or random).random()
    return ceiling / 2 + r * ceiling / 2
