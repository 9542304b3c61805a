"""SinkBatch: what the runtime hands :meth:`SinkConnector.write`, and how the sink reports per record.

A batch holds the records of ONE consumer config, so it knows its mapping: ``batch.mapping`` is the
object the connector attached to that :class:`~danube_connect_core.consumer_config.ConsumerConfig`
(``ConsumerConfig.mapping``), e.g. its settings entry or a prepared writer. The sink writes the records and
reports the exceptions, one record at a time:

- :meth:`SinkBatch.reject` - this record can never be written (bad data): the runtime dead-letters it with
  the reason (invariant 5) and acks it after the dead-letter publish was acknowledged;
- :meth:`SinkBatch.retry` - this record was not written this time for a transient reason: the runtime
  hands it (and only the other records reported for retry) to ``write`` again after a backoff, within the
  same retry budget; an exhausted budget exits 1 without acking them;
- every record not reported is taken as durably written once ``write`` returns, and acked (invariant 1).

A record both rejected and reported for retry is rejected (it would never succeed). Reporting a record
that is not in the batch raises ValueError: a bug in the connector.

Records carry distinct ``message_id``s: the runtime hands a message delivered twice into one batch (a
redelivery that overtook its ack) to ``write`` once and acks both deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from danube_connect_core.records import SinkRecord

__all__ = ["SinkBatch"]

M = TypeVar("M")


@dataclass(eq=False)
class SinkBatch(Generic[M]):
    """The records of one consumer config to write, with the per-record reports of the write.

    ``topic`` and ``subscription`` are the consumer config's; ``mapping`` is its ``mapping``. Tests and
    tools may build a batch directly and look at :attr:`rejected` and :attr:`retried` after ``write``.
    """

    mapping: M
    topic: str
    subscription: str
    records: Sequence[SinkRecord]
    #: ``message_id`` -> reason, in report order.
    rejected: dict[str, str] = field(default_factory=dict, init=False)
    #: ``message_id`` -> reason, in report order (a rejected record is never listed here).
    retried: dict[str, str] = field(default_factory=dict, init=False)
    #: The longest Retry-After hint given with :meth:`retry` (seconds), or None.
    retry_after: float | None = field(default=None, init=False)
    _ids: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ids = frozenset(r.message_id for r in self.records)

    def reject(self, record: SinkRecord, reason: str) -> None:
        """``record`` can never be written (bad data): dead-letter it with ``reason``."""
        key = self._key(record)
        self.retried.pop(key, None)
        self.rejected.setdefault(key, reason)

    def retry(self, record: SinkRecord, reason: str, *, retry_after: float | None = None) -> None:
        """``record`` was not written this time (a transient failure): write it again later.

        ``retry_after`` is a hint from the target (e.g. HTTP Retry-After, in seconds): the runtime waits at
        least that long before the next attempt, capped by ``retry.max_backoff_ms``.
        """
        key = self._key(record)
        if key in self.rejected:
            return
        self.retried.setdefault(key, reason)
        if retry_after is not None:
            self.retry_after = max(retry_after, self.retry_after or 0.0)

    @property
    def written(self) -> list[SinkRecord]:
        """The records not reported (taken as durably written once ``write`` returned)."""
        return [
            r for r in self.records if r.message_id not in self.rejected and r.message_id not in self.retried
        ]

    def _key(self, record: SinkRecord) -> str:
        key = record.message_id
        if key not in self._ids:
            raise ValueError(f"record {key} is not in this batch of {self.topic}")
        return key
