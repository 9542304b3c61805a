"""EmbeddedBroker: the in-process API (one grpc.aio server with every Danube service)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

import grpc

from danube_embedded_broker.auth import JwtAuthInterceptor
from danube_embedded_broker.config import BrokerConfig
from danube_embedded_broker.core import BrokerCore
from danube_embedded_broker.metrics import BrokerMetrics
from danube_embedded_broker.schema import SchemaLink
from danube_embedded_broker.services import ConsumerService, DiscoveryService, HealthService, ProducerService
from danube_embedded_broker.services.consumer import add_consumer_service
from danube_embedded_broker.storage import check_writable
from danube_embedded_broker.wire import pb_grpc

log = logging.getLogger(__name__)

#: headroom above ``max_message_bytes`` for the rest of a StreamMessage (ids, attributes, names)
FRAME_HEADROOM = 4 * 1024 * 1024


def grpc_receive_limit(max_message_bytes: int) -> int:
    """gRPC's own receive limit: room for a maximal payload plus its fields.

    Payloads up to ``max_message_bytes`` pass; larger ones up to this limit get the broker's clean
    INVALID_ARGUMENT; beyond it gRPC itself answers RESOURCE_EXHAUSTED. Either way the broker keeps serving.
    """
    return min(2**31 - 1, max(2 * max_message_bytes, max_message_bytes + FRAME_HEADROOM))


class EmbeddedBroker:
    """A single-node Danube-compatible broker.

    ``url = await broker.start()`` binds and serves; ``await broker.stop()`` ends every stream,
    persists cursors and logs and, when ``data_dir`` was ``None``, removes the temporary directory.
    Also usable as ``async with EmbeddedBroker(cfg) as broker``.
    """

    def __init__(self, config: BrokerConfig | None = None) -> None:
        self.config = config or BrokerConfig()
        self._server: grpc.aio.Server | None = None
        self._core: BrokerCore | None = None
        self._schemas: SchemaLink | None = None
        self._metrics: BrokerMetrics | None = None
        self._fsync_task: asyncio.Task[None] | None = None
        self._temp_dir: Path | None = None
        self.data_dir: Path | None = self.config.data_dir
        self.port: int = 0
        self.url: str = ""
        self.metrics_port: int | None = None

    @property
    def core(self) -> BrokerCore:
        """The broker state (for tests and diagnostics); raises ``RuntimeError`` before start."""
        if self._core is None:
            raise RuntimeError("broker is not running")
        return self._core

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> str:
        """Bind, load stored topics and serve; returns ``http://HOST:PORT``.

        Raises ``RuntimeError`` when the port cannot be bound and ``OSError`` for an unusable data
        dir (missing and not creatable, or not writable: read-only, no permission) or metrics port;
        nothing is left running then.
        """
        if self._server is not None:
            return self.url
        cfg = self.config
        if cfg.data_dir is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="danube-embedded-"))
            self.data_dir = self._temp_dir
        else:
            self.data_dir = cfg.data_dir
        assert self.data_dir is not None
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            check_writable(self.data_dir)
            await self._start(self.data_dir)
        except BaseException:
            await self.stop()
            raise
        log.info("danube embedded broker serving at %s (data dir %s)", self.url, self.data_dir)
        return self.url

    async def _start(self, data_dir: Path) -> None:
        cfg = self.config
        limit = grpc_receive_limit(cfg.max_message_bytes)
        options = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),  # never share the port with another live broker
        ]
        interceptors = [JwtAuthInterceptor(cfg.auth_secret)] if cfg.auth_secret else []
        server = grpc.aio.server(options=options, interceptors=interceptors)
        self._server = server
        self.port = server.add_insecure_port(f"{cfg.host}:{cfg.port}")
        advertised_host = "127.0.0.1" if cfg.host in ("0.0.0.0", "", "[::]", "::") else cfg.host
        self.url = cfg.advertised_url or f"http://{advertised_host}:{self.port}"

        schema_dir = data_dir / "schema-registry"
        schema_dir.mkdir(exist_ok=True)
        self._schemas = SchemaLink(schema_dir, topic_exists=self._topic_exists)
        self._metrics = BrokerMetrics()
        core = BrokerCore(cfg, data_dir, self.url, self._metrics, self._schemas)
        self._core = core
        core.load()

        # A broker advertising another broker's URL plays a cluster's non-owner: it answers Redirect.
        redirect = self.url != f"http://{advertised_host}:{self.port}"
        pb_grpc.add_DiscoveryServicer_to_server(DiscoveryService(core, redirect), server)  # type: ignore[no-untyped-call, unused-ignore]
        pb_grpc.add_ProducerServiceServicer_to_server(ProducerService(core), server)  # type: ignore[no-untyped-call, unused-ignore]
        add_consumer_service(ConsumerService(core), server)
        pb_grpc.add_HealthCheckServicer_to_server(HealthService(core), server)  # type: ignore[no-untyped-call, unused-ignore]
        self._schemas.add_to_server(server)
        await server.start()

        if cfg.fsync == "interval":
            self._fsync_task = asyncio.get_running_loop().create_task(self._fsync_loop(core), name="fsync")
        if cfg.metrics_port is not None:
            self.metrics_port = self._metrics.serve(cfg.host, cfg.metrics_port)
            log.info("metrics at http://%s:%d/metrics", advertised_host, self.metrics_port)

    def _topic_exists(self, topic: str) -> bool:
        return self._core is not None and self._core.topic_exists(topic)

    async def _fsync_loop(self, core: BrokerCore) -> None:
        interval = self.config.fsync_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            core.sync()

    async def stop(self, grace: float = 2.0) -> None:
        """Graceful stop: end streams, finish in-flight RPCs (up to ``grace`` s), persist, close.

        Idempotent; safe after a failed start.
        """
        core, server = self._core, self._server
        if core is not None:
            core.closing = True
            core.end_streams()
        if server is not None:
            await server.stop(grace)
            self._server = None
        if self._fsync_task is not None:
            self._fsync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fsync_task
            self._fsync_task = None
        if core is not None:
            await core.close()
            self._core = None
        if self._schemas is not None:
            self._schemas.close()
            self._schemas = None
        if self._metrics is not None:
            self._metrics.stop()
            self._metrics = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
