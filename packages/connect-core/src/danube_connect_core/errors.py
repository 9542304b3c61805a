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
- :class:`Backpressure` - a :class:`Retryable` raised by ``sender.send(item, wait=False)`` when the
  topic's in-flight bound is full: nothing was published (a source that must answer at once, such as an
  HTTP handler, answers "unavailable" instead of waiting for a place).
- :class:`InvalidData` - this record can never be processed. It goes to the dead-letter topic with the
  reason and is acknowledged; the healthy records beside it are still written (invariant 5). A sink reports
  such records per record with ``batch.reject`` (:mod:`danube_connect_core.sink_batch`). With
  ``[errors] tolerance = "none"`` the first invalid record is fatal instead.
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

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc

__all__ = [
    "Backpressure",
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


class Backpressure(Retryable):
    """The in-flight bound of the record's topic is full and the sender was asked not to wait.

    Raised by ``SourceSender.send(item, wait=False)``; nothing was published (invariant 3).
    """

    def __init__(self, message: str, *, retry_after: float | None = 1.0) -> None:
        super().__init__(message, retry_after=retry_after)


class Fatal(ConnectorError):
    """The connector cannot continue: drain, call ``shutdown()`` and exit 1."""


class InvalidData(ConnectorError):
    """One record can never be processed (bad data); ``reason`` says why.

    Raised by codecs, :meth:`SinkRecord.as_type <danube_connect_core.records.SinkRecord.as_type>` and
    source-side validation for a single record. A sink reports a bad record of its batch with
    ``batch.reject(record, exc.reason)`` (:mod:`danube_connect_core.sink_batch`) rather than raising it
    from ``write``: there it could not say which record is bad, so the runtime treats it as Fatal.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(ConnectorError):
    """A configuration problem, reported as one line naming the file and the key (exit code 2)."""

    def __init__(self, message: str, *, file: Path | str | None = None, key: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.key = key
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = _one_line(self.file or "<no file>")
        if self.key:
            return f"{where}: {_one_line(self.key)}: {_one_line(self.detail)}"
        return f"{where}: {_one_line(self.detail)}"


def _one_line(text: str) -> str:
    """``text`` with each unprintable character (newline, escape, line separator...) written as its Python
    escape, so a key taken from the file (TOML allows ``"a\\nb" = 1``) cannot break the one-line report."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class DanubeError(Exception):
    """Base class of every error raised by the Danube client.

    ``code`` is the last gRPC status code seen, when the failure came from the broker.
    """

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code
