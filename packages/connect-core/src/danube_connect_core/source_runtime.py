"""SourceRuntime: runs a SourceConnector in polling or streaming mode.

Lifecycle: start /metrics, /health, /ready; ``initialize``; connect to Danube and create the producers of
``producer_configs()`` (registering schemas); then poll or hand a sender to ``start_streaming``. Every
record, polled or streamed, takes the one delivery path of :mod:`danube_connect_core.source_pipeline`
(bound, validation, retries, dead letters, offsets); a committer task hands committable offsets to
``commit()`` as acks arrive. On stop (signal, Fatal, exhausted retries) intake stops first, records inside
the pipeline finish, acknowledged offsets are committed, ``shutdown()`` is called, and ``run`` returns the
exit code (0 clean, 1 fatal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from danube_connect_core.config import ConnectorConfig
from danube_connect_core.connector import SourceConnector, SourceMode
from danube_connect_core.errors import ConfigError, Fatal, Retryable, ShuttingDown
from danube_connect_core.publisher import Publisher
from danube_connect_core.records import SourceEnvelope, SourceRecord
from danube_connect_core.resilience import RetriesExhausted, retry_retryable
from danube_connect_core.runtime_support import RuntimeServices, create_client
from danube_connect_core.source_pipeline import PipelineSender, SourcePipeline

__all__ = ["SourceRuntime"]

log = logging.getLogger("danube_connect.source")


class SourceRuntime:
    def __init__(self, connector: SourceConnector, config: ConnectorConfig, *, client: Any = None) -> None:
        self.connector = connector
        self.config = config
        self.services = RuntimeServices(connector, config)
        self.metrics = self.services.metrics
        self.health = self.services.health
        self._client = client
        self._owns_client = client is None
        self.publisher: Publisher | None = None
        self.pipeline: SourcePipeline | None = None
        self._commit_lock = asyncio.Lock()
        #: Set once intake is open: producers created, ``start_streaming`` returned or polling begun.
        self.started = asyncio.Event()

    @property
    def port(self) -> int:
        return self.services.port

    async def run(self, stop: asyncio.Event | None = None) -> int:
        from danube_connect_core.client import DanubeError

        stop = stop or asyncio.Event()
        s = self.services
        await s.start_server()
        log.info(
            "source %s starting (metrics on port %d)",
            self.config.connector_name,
            s.port,
            extra={"metrics_port": s.port},
        )
        tasks: list[asyncio.Task[Any]] = []
        initialized = False
        try:
            await self.connector.initialize(self.config)
            initialized = True
            await s.check_target_once()
            if self._client is None:
                self._client = create_client(self.config)
            self.publisher = Publisher(self._client, self.config, self.metrics)
            self.publisher.on_broker_state = lambda ok, detail: self.health.set_broker(ok, detail)
            self.pipeline = SourcePipeline(self.publisher, self.config, s)
            s.broker_probe = self._client.schema_registry.list_subjects
            for pc in await self.connector.producer_configs():
                await self.publisher.add_topic(pc)
            try:  # created up front so broker problems show at start and the topic exists for readers
                await self.publisher.open_dead_letter()
            except DanubeError as exc:
                log.warning("cannot create the dead-letter producer: %s (will retry on the first)", exc)
            self.health.set_broker(True)
            self.pipeline.accepting = True
            tasks.append(asyncio.create_task(s.health_loop(), name="health"))
            tasks.append(asyncio.create_task(self._committer(self.pipeline), name="committer"))
            if self.connector.mode is SourceMode.STREAMING:
                await self.connector.start_streaming(PipelineSender(self.pipeline))
            else:
                tasks.append(asyncio.create_task(self._poll_loop(stop), name="poll"))
            self.started.set()
            await s.until_stopped(stop)
        except ConfigError:
            raise
        except Fatal as exc:
            s.fail(exc, str(exc))
        except Exception as exc:
            log.exception("source runtime failed")
            s.fail(exc, f"{type(exc).__name__}: {exc}")
        return await self._drain(tasks, initialized)

    async def _drain(self, tasks: list[asyncio.Task[Any]], initialized: bool) -> int:
        s = self.services
        if self.pipeline is not None:
            self.pipeline.accepting = False  # invariant 6: stop intake first
        self.health.set_shutting_down()
        timeout = self.config.processing.shutdown_timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout):
                poll = next((t for t in tasks if t.get_name() == "poll"), None)
                if poll is not None:
                    with contextlib.suppress(Exception):
                        await poll  # the loop exits after its current batch
                if self.pipeline is not None:
                    await self.pipeline.wait_idle()
                    await self._commit(self.pipeline)
        except TimeoutError:
            log.error("shutdown timeout (%d ms) reached with publishes in flight", timeout * 1000)
            s.fail(TimeoutError(), "shutdown timeout reached")
        closers: list[Any] = []
        if self.publisher is not None:
            closers.append(self.publisher.close)
        if self._client is not None and self._owns_client:
            closers.append(self._client.close)
        return await s.finish("source", tasks, initialized=initialized, closers=closers)

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        interval = self.config.processing.poll_interval_ms / 1000

        def on_retry(n: int, exc: Retryable, delay: float) -> None:
            self.metrics.retries.labels(self.metrics.connector, "").inc()
            self.metrics.error("", "retryable")
            self.health.set_retrying(True, f"poll: {exc} (retry {n} in {delay:.2f}s)")

        while not stop.is_set() and not self.services.failed.is_set():
            try:
                items = await retry_retryable(self.connector.poll, self.config.retry, on_retry=on_retry)
            except RetriesExhausted as exc:
                self.services.fail(exc, f"poll: {exc}")
                return
            except Fatal as exc:
                self.services.fail(exc, f"poll: {exc}")
                return
            self.health.set_retrying(False)
            if not items:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
                continue
            await self._publish_polled(items)

    async def _publish_polled(self, items: Sequence[SourceRecord | SourceEnvelope]) -> None:
        """Deliver one poll's records through the pipeline, concurrently within the in-flight bound.

        An invalid record is dead-lettered (its offset is then committed like any other); a publish whose
        retries are exhausted, or a Fatal error, stops the runtime (exit 1) and its offset and every later
        one of its offset partition stay uncommitted, so a restart polls them again.
        """
        pipeline = self.pipeline
        assert pipeline is not None

        async def one(item: SourceRecord | SourceEnvelope) -> None:
            try:
                await pipeline.deliver(item)
            except ShuttingDown:
                pass  # intake stopped (a signal, another record's fatal error): left uncommitted
            except Retryable as exc:  # the retry budget is exhausted
                self.services.fail(exc, f"publish: {exc}")
            except Exception as exc:  # Fatal, InvalidData (tolerance none): the runtime already stops
                self.services.fail(exc, str(exc))

        await asyncio.gather(*(one(i) for i in items))

    async def _committer(self, pipeline: SourcePipeline) -> None:
        while True:
            await pipeline.commit_wake.wait()
            pipeline.commit_wake.clear()
            await self._commit(pipeline)

    async def _commit(self, pipeline: SourcePipeline) -> None:
        async with self._commit_lock:
            offsets = pipeline.take_committable()
            if not offsets:
                return
            try:
                await self.connector.commit(offsets)
            except Fatal as exc:
                self.services.fail(exc, f"commit: {exc}")
            except Exception as exc:  # a failed commit only means a replay after restart (at-least-once)
                log.warning("commit of %s failed: %s", offsets, exc)
