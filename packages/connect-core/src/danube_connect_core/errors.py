"""The error kinds a connector raises to tell the runtime what to do.

Failure semantics (what the runtime does with each):

- :class:`Retryable` - a transient failure of the external system (timeout, rate limit, outage).
  The runtime retries the same work with exponential backoff and jitter. While it retries, the connector
  reports not-ready. When the retry budget is exhausted the connector reports unhealthy and exits with
  code 1 *without* acknowledging anything it had not written (the broker redelivers; invariant 5: an outage
  is not poison and is never dead-lettered).
- :class:`ShuttingDown` - a :class:`Retryable` raised by ``sender.send`` of a streaming source once the
  runtime stopped intake (SIGTERM, a fatal error): nothing was published. An HTTP handler can answer
  503 with Retry-After knowingly ("this instance is going away, try another or later").
- :class:`InvalidData` - this record (or these named records of a batch) can never be processed. They go
  to the dead-letter topic with the reason and are acknowledged; the healthy records beside them are still
  written (invariant 5). With ``[errors] tolerance = "none"`` the first invalid record is fatal instead.
- :class:`Fatal` - the connector cannot go on (bad credentials, lost state). The runtime stops intake,
  drains what is already in flight, calls ``shutdown()`` and exits with code 1.
- :class:`ConfigError` - the configuration is wrong; raised before anything starts; exit code 2. Its message
  names the file and the key and never contains a secret value (invariant 7).

:class:`DanubeError` is the other family: what the broker client raises (see
:mod:`danube_connect_core.client.errors`), including :class:`~.resilience.RetriesExhausted`. It lives here,
beside the connector's kinds, so that the resilience module and the client share one class hierarchy
without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc

    from danube_connect_core.records import SinkRecord

__all__ = [
    "ConfigError",
    "ConnectorError",
    "DanubeError",
    "Fatal",
    "InvalidData",
    "Retryable",
    "ShuttingDown",
]


class ConnectorError(Exception):
    """Base class of every error kind the runtime understands."""


class Retryable(ConnectorError):
    """A transient failure: retry the same work later.

    ``retry_after`` (seconds) is a hint from the external system (for example an HTTP Retry-After);
    the runtime waits at least that long, capped by ``retry.max_backoff_ms``.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ShuttingDown(Retryable):
    """The runtime is shutting down (or stopped after a fatal error) and accepts no more records.

    Raised by ``SourceSender.send``/``send_batch`` after intake stopped (invariant 6); the record was not
    published. It is a :class:`Retryable`, so code that treats every Retryable as "try again later" keeps
    working; code that wants to tell a shutdown apart (an HTTP handler answering 503 with Retry-After, an
    MQTT intake that stops reading) catches it first.
    """

    def __init__(
        self, message: str = "connector is shutting down", *, retry_after: float | None = 1.0
    ) -> None:
        super().__init__(message, retry_after=retry_after)


class Fatal(ConnectorError):
    """The connector cannot continue: drain, call ``shutdown()`` and exit 1."""


class InvalidData(ConnectorError):
    """One record, or the named records of a batch, can never be processed.

    Raised from ``process(record)`` it concerns that record. Raised from ``process_batch(records)``:

    - with ``records`` naming some records of the batch, only those are dead-lettered. If
      ``others_written`` is false (the default) the runtime hands the remaining records to
      ``process_batch`` again; writes are expected to be idempotent (invariant 2), so this is safe even if
      some of them had been written. If ``others_written`` is true the runtime takes the connector's word
      that the rest is durably written and acknowledges it.
    - with no ``records``, the runtime cannot tell which record is bad: it processes the batch again one
      record at a time to isolate the bad ones.

    ``reasons`` may give a per-record reason keyed by ``SinkRecord.message_id``.
    """

    def __init__(
        self,
        reason: str,
        *,
        records: Sequence[SinkRecord] | None = None,
        reasons: dict[str, str] | None = None,
        others_written: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.records: list[SinkRecord] | None = list(records) if records is not None else None
        self.reasons: dict[str, str] = dict(reasons or {})
        self.others_written = others_written

    def reason_for(self, record: SinkRecord) -> str:
        """The reason for one named record (its own if given, else the shared one)."""
        return self.reasons.get(record.message_id, self.reason)


class ConfigError(ConnectorError):
    """A configuration problem, reported as one line naming the file and the key (exit code 2)."""

    def __init__(self, message: str, *, file: Path | str | None = None, key: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file or "<no file>"
        if self.key:
            return f"{where}: {self.key}: {self.detail}"
        return f"{where}: {self.detail}"


class DanubeError(Exception):
    """Base class of every error raised by the Danube client.

    ``code`` is the last gRPC status code seen, when the failure came from the broker.
    """

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code
