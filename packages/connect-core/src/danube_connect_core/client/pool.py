"""One gRPC channel per broker URL, shared by every producer, consumer and registry call of a client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import grpc

from .errors import ClientClosed
from .options import ClientOptions, TlsOptions
from .rpc import BrokerStubs, RegistryStubs


def grpc_target(url: str) -> str:
    """``host:port`` for gRPC from a broker URL (``http://h:6650``, ``https://h:6650`` or bare ``h:6650``)."""
    if "://" not in url:
        return url.rstrip("/")
    parts = urlsplit(url)
    if not parts.netloc:
        raise ValueError(f"invalid broker URL {url!r}")
    return parts.netloc


def wants_tls(url: str, tls: TlsOptions | None) -> bool:
    """TLS is on when configured, or when the URL says ``https://``."""
    return tls is not None or url.startswith("https://")


def channel_credentials(tls: TlsOptions | None) -> grpc.ChannelCredentials:
    """TLS credentials: CA bundle (or system roots), plus client certificate and key for mTLS."""
    if tls is None:
        return grpc.ssl_channel_credentials()
    ca = Path(tls.ca_file).read_bytes() if tls.ca_file else None
    key = Path(tls.key_file).read_bytes() if tls.key_file else None
    cert = Path(tls.cert_file).read_bytes() if tls.cert_file else None
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


class Connection:
    """A channel and the typed stubs bound to it."""

    __slots__ = ("broker", "channel", "registry", "url")

    def __init__(self, url: str, channel: grpc.aio.Channel) -> None:
        self.url = url
        self.channel = channel
        self.broker = BrokerStubs(channel)
        self.registry = RegistryStubs(channel)


class ChannelPool:
    """Channels keyed by broker URL.

    gRPC channels reconnect by themselves; the pool only makes sure each broker gets one channel and that
    :meth:`close` closes them all. Reconnect backoff is kept short (at most ``_MAX_RECONNECT_MS``) so a
    client notices a restarted broker within about a second rather than gRPC's default of up to two minutes.
    """

    _MAX_RECONNECT_MS = 1000

    def __init__(self, options: ClientOptions) -> None:
        self._options = options
        self._connections: dict[str, Connection] = {}
        self._closed = False
        self._credentials: grpc.ChannelCredentials | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, url: str) -> Connection:
        """The connection to ``url``, created on first use (channels connect lazily)."""
        if self._closed:
            raise ClientClosed("the Danube client is closed")
        key = url.rstrip("/")
        conn = self._connections.get(key)
        if conn is None:
            conn = Connection(key, self._open(key))
            self._connections[key] = conn
        return conn

    def _open(self, url: str) -> grpc.aio.Channel:
        size = self._options.max_message_bytes
        channel_options: list[tuple[str, int]] = [
            ("grpc.max_send_message_length", size),
            ("grpc.max_receive_message_length", size),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", self._MAX_RECONNECT_MS),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ]
        target = grpc_target(url)
        if wants_tls(url, self._options.tls):
            if self._credentials is None:
                self._credentials = channel_credentials(self._options.tls)
            return grpc.aio.secure_channel(target, self._credentials, options=channel_options)
        return grpc.aio.insecure_channel(target, options=channel_options)

    async def close(self) -> None:
        """Close every channel (in-flight RPCs end with CANCELLED)."""
        self._closed = True
        connections = list(self._connections.values())
        self._connections.clear()
        await asyncio.gather(*(c.channel.close() for c in connections), return_exceptions=True)
        await _settle_grpc_call_tasks()


async def _settle_grpc_call_tasks(bound_s: float = 1.0) -> None:
    """Let grpc.aio finish the status tasks of calls the close cancelled (it needs a few loop turns).

    Without this, close() can return while grpc's ``_handle_status_once_received`` tasks are still pending,
    which shows up as "Task was destroyed but it is pending" when the loop ends.
    """
    deadline = asyncio.get_running_loop().time() + bound_s
    while asyncio.get_running_loop().time() < deadline:
        if not any(_is_grpc_call_task(t) for t in asyncio.all_tasks()):
            return
        await asyncio.sleep(0.005)


def _is_grpc_call_task(task: asyncio.Task[object]) -> bool:
    return not task.done() and "_AioCall" in getattr(task.get_coro(), "__qualname__", "")
