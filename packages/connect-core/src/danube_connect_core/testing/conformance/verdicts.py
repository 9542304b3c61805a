"""The verdicts of the conformance checks: what the target, the broker and the logs must show.

Each raises AssertionError with counts and a sample of the offending records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from danube_connect_core.testing.harness import ConnectorProcess

__all__ = ["assert_acked_stored", "assert_exactly_once", "assert_no_lost_acks", "sample"]


def sample(values: Iterable[Any] | dict[Any, Any], n: int = 10) -> str:
    """The first ``n`` of ``values`` (sorted) for a failure message."""
    items = list(values.items() if isinstance(values, dict) else values)
    return ", ".join(map(str, sorted(items)[:n]))


def assert_exactly_once(stored: list[int], n: int, *, idempotent: bool = True) -> None:
    """``stored`` holds every record ``0..n-1`` and nothing else: exactly once each when the target is
    idempotent, at least once otherwise."""
    counts = Counter(stored)
    missing = set(range(n)) - counts.keys()
    assert not missing, f"{len(missing)} of {n} records lost, e.g. {sample(missing)}"
    foreign = counts.keys() - set(range(n))
    assert not foreign, f"records that were never produced: {sample(foreign)}"
    if idempotent:
        repeated = {i: c for i, c in counts.items() if c > 1}
        assert not repeated, f"{len(repeated)} records stored twice or more (i, copies): {sample(repeated)}"
        assert len(stored) == n


def assert_no_lost_acks(proc: ConnectorProcess) -> None:
    """No ack of ``proc`` was given up on (the client logs "ack ... not delivered", the sink runtime
    "ack failed"): a lost ack is redelivered only after the broker's ack timeout, so a drain then stalls."""
    lost = [line for line in proc.lines if "not delivered" in line or "ack failed" in line]
    assert not lost, f"{len(lost)} acks of {proc.connector} were given up on:\n" + "\n".join(lost[:5])


def assert_acked_stored(acked: list[int], stored: list[int]) -> None:
    """Invariant 1 seen from outside: every record the broker holds as acknowledged is in the target."""
    missing = set(acked) - set(stored)
    assert not missing, (
        f"{len(missing)} records acknowledged to the broker but not in the target, e.g. {sample(missing)}"
    )
