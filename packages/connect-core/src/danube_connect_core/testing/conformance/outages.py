"""Real target outages for the target-outage check: a server that stops, a disk that fills, a network
path that refuses connections.

- :func:`restart_outage` - the target's own :meth:`~SinkTarget.stop` / :meth:`~SinkTarget.start` (a
  server target whose port closes, then listens again with the same state);
- :func:`disk_full_outage` - the target's store on a small tmpfs filled to ENOSPC, then freed (for an
  engine inside the sink process; needs root and the mount capability, else the check is skipped, or
  fails under ``CI=true``);
- :class:`TcpProxy` - put it between the sink and a networked target and :meth:`TcpProxy.refuse`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

from danube_connect_core.testing.conformance.target import Outage, OutageFactory, SinkTarget

__all__ = ["TcpProxy", "disk_full_outage", "restart_outage"]

#: The tmpfs under an in-process engine's store (chdb needs a few MiB of its own to start).
STORE_BYTES = 64 * 1024 * 1024


def restart_outage(target_type: Callable[[Path], SinkTarget]) -> OutageFactory:
    """The target stops (its port is closed: connection refused) and starts again on the same port."""

    @contextlib.asynccontextmanager
    async def factory(root: Path) -> AsyncIterator[tuple[SinkTarget, Outage]]:
        target = target_type(root)
        await target.start()
        try:
            yield target, Outage("the target refuses connections", target.stop, target.start)
        finally:
            await target.stop()

    return factory


def disk_full_outage(
    target_type: Callable[[Path], SinkTarget], store_bytes: int = STORE_BYTES
) -> OutageFactory:
    """The target's whole ``root`` on a tmpfs of ``store_bytes``, filled to ENOSPC for the outage."""

    @contextlib.asynccontextmanager
    async def factory(root: Path) -> AsyncIterator[tuple[SinkTarget, Outage]]:
        from danube_connect_core.testing.storage_faults import mounted_tmpfs, require_mount_capability

        require_mount_capability()
        with mounted_tmpfs(root, store_bytes) as disk:
            target = target_type(root)
            await target.start()
            try:
                fill, free = partial(asyncio.to_thread, disk.fill), partial(asyncio.to_thread, disk.free)
                yield target, Outage("the store's disk is full (ENOSPC)", fill, free)
            finally:
                await target.stop()

    return factory


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in the test's event loop, forwarding to ``upstream_port``.

    :meth:`refuse` closes the listening socket (new connections are refused) and aborts every open one;
    :meth:`start` listens again on the same port.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def refuse(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()
        await self._server.wait_closed()
        self._server = None

    async def stop(self) -> None:
        if self._server is not None:
            await self.refuse()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}
