"""Client configuration: TLS/mTLS, JWT token, retry policy."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from danube_connect_core.resilience import equal_jitter

TokenSource = str | Callable[[], str | Awaitable[str]]
"""A JWT: a fixed string, or a function (sync or async) called before each RPC so tokens can rotate."""


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS settings: ``ca_file`` alone is server-authenticated TLS; add ``cert_file`` + ``key_file`` for mTLS.

    All paths are PEM files. ``ca_file=None`` trusts the system roots.
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("TlsOptions: mTLS needs both cert_file and key_file")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter.

    Attempt ``n`` (0-based) waits a random time in ``[d/2, d]`` with ``d = min(max_backoff_ms,
    base_backoff_ms * 2**n)``. ``max_retries`` is the number of retries after the first try, so an operation
    is tried at most ``max_retries + 1`` times before :class:`~.errors.RetriesExhausted`.
    Consumers use the backoff (not the bound): they reconnect forever.
    """

    max_retries: int = 5
    base_backoff_ms: int = 200
    max_backoff_ms: int = 5000

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_backoff_ms < 0 or self.max_backoff_ms < self.base_backoff_ms:
            raise ValueError(f"invalid RetryPolicy: {self}")

    def backoff_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): :func:`~..resilience.equal_jitter`."""
        return equal_jitter(attempt, self.base_backoff_ms / 1000, self.max_backoff_ms / 1000, rng)


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Options of a :class:`~.client.DanubeClient`.

    ``rpc_timeout_s`` bounds every unary RPC (lookup, create, send, ack, registry calls) so a hung broker
    surfaces as DEADLINE_EXCEEDED, which is retried like UNAVAILABLE.
    ``health_interval_s`` is how often producers and consumers poll HealthCheck (official clients: 5 s).
    """

    tls: TlsOptions | None = None
    token: TokenSource | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rpc_timeout_s: float = 10.0
    health_interval_s: float = 5.0
    max_message_bytes: int = 16 * 1024 * 1024
