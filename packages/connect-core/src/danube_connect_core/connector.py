"""The base classes a connector author subclasses: SourceConnector and SinkConnector.

A connector declares how its TOML section is loaded with class attributes (``config_section``,
``settings_model``, ``env_prefix``, ``env_overrides``) and implements the external-system part;
the runtimes do everything else.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel

from danube_connect_core.config import ConnectorConfig
from danube_connect_core.config_loader import ConfigSpec

if TYPE_CHECKING:
    from danube_connect_core.consumer_config import ConsumerConfig
    from danube_connect_core.producer_config import ProducerConfig
    from danube_connect_core.publisher import Published
    from danube_connect_core.records import Offset, SourceEnvelope, SourceRecord
    from danube_connect_core.runtime_context import RuntimeContext
    from danube_connect_core.sink_batch import SinkBatch

__all__ = ["SinkConnector", "SourceConnector", "SourceMode", "SourceSender"]


class SourceMode(enum.Enum):
    POLLING = "polling"
    STREAMING = "streaming"


class SourceSender(Protocol):
    """Handed to a streaming source: push records into the delivery pipeline.

    ``send`` resolves once the broker acknowledged the record, or its dead letter (``Published.
    dead_lettered``; the record was invalid). It waits while the topic's in-flight bound is full
    (backpressure) and retries a failed publish with ``[retry]`` backoff; with ``wait=False`` (a caller
    that must answer promptly, whose upstream retries) it raises Backpressure at once instead and makes one
    attempt. It raises ShuttingDown after intake stopped, Retryable when the publish failed (nothing
    acknowledged), InvalidData only with ``[errors] tolerance = "none"`` (the runtime is stopping) and
    Fatal when the runtime cannot go on.
    Records of one ``SourceEnvelope.ordering_key`` are published in the order of the ``send`` calls, each
    once the previous one settled; different keys and key-less records concurrently.
    ``send_batch`` sends concurrently and raises the first failure. Full semantics:
    :mod:`danube_connect_core.source_pipeline`.
    """

    async def send(self, item: SourceRecord | SourceEnvelope, *, wait: bool = True) -> Published: ...

    async def send_batch(self, items: Sequence[SourceRecord | SourceEnvelope]) -> list[Published]: ...


class _ConnectorBase(ABC):
    #: Entry-point style name, used in logs and metrics when the config does not say otherwise.
    name: ClassVar[str] = ""
    #: The root table of the TOML file holding this connector's settings (e.g. "webhook").
    config_section: ClassVar[str | None] = None
    #: The pydantic model validating that table (use ``extra="forbid"`` so unknown keys are errors).
    settings_model: ClassVar[type[BaseModel] | None] = None
    #: ``<PREFIX>_<FIELD>`` environment overrides for the section's top-level fields.
    env_prefix: ClassVar[str | None] = None
    #: Further overrides: environment variable -> dotted key inside the section.
    env_overrides: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def config_spec(cls) -> ConfigSpec:
        return ConfigSpec(
            section=cls.config_section,
            model=cls.settings_model,
            env_prefix=cls.env_prefix,
            env_overrides=dict(cls.env_overrides),
        )

    _danube_runtime_context: RuntimeContext | None = None

    def bind_runtime(self, context: RuntimeContext) -> None:  # noqa: B027 - optional hook
        """Optional hook, called once before the HTTP server on ``processing.metrics_port`` starts and
        before :meth:`initialize`: the place to register own metrics in ``context.metrics_registry`` and
        own HTTP routes with ``context.add_routes(...)`` (``context.config`` holds the loaded settings).
        Raise ConfigError for a bad setting. The context stays available as :attr:`runtime_context`.
        """

    @property
    def runtime_context(self) -> RuntimeContext:
        """The runtime's :class:`~danube_connect_core.runtime_context.RuntimeContext` (metrics registry,
        routes, ``fail``, ``watch``, ``set_ready``, ``health_changed``). RuntimeError outside a runtime."""
        if self._danube_runtime_context is None:
            raise RuntimeError(f"{type(self).__name__} is not run by a runtime (no runtime context)")
        return self._danube_runtime_context

    def _bind_context(self, context: RuntimeContext) -> None:
        self._danube_runtime_context = context

    @abstractmethod
    async def initialize(self, config: ConnectorConfig) -> None:
        """Connect to the external system. Raise Fatal (or ConfigError) to stop; do not retry here."""

    async def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Called once, after the runtime drained, also after a Fatal error."""

    async def health_check(self) -> None:  # noqa: B027 - optional hook
        """Raise (any exception) when the external system is unreachable; drives /ready and /health."""


class SourceConnector(_ConnectorBase):
    """Imports data into Danube.

    Polling mode: the runtime calls :meth:`poll` every ``processing.poll_interval_ms`` when it returned
    nothing (immediately again when it returned records). Streaming mode: :meth:`start_streaming` receives a
    :class:`SourceSender` and returns; the connector pushes records from its own tasks.

    Both modes share one delivery pipeline (:mod:`danube_connect_core.source_pipeline`): order per
    ordering key (``SourceEnvelope.ordering_key``), validation, the in-flight bound, retries with backoff,
    dead letters for invalid records (``tolerance = "none"`` stops instead) and offset sequencing. A
    connector only produces records and persists offsets.

    Failure semantics: ``poll`` raising Retryable is retried with backoff (the connector is not-ready
    meanwhile) and exhausting the budget exits 1; Fatal stops the connector with exit 1. A polled record
    whose publish exhausts its retries exits 1 too. Records already handed over are drained (published,
    dead-lettered or failed) before ``shutdown()``. ``commit`` is called, polling or streaming, only with
    offsets whose record (or its dead letter) and every earlier record of the same offset partition were
    acknowledged, in order per offset partition.
    """

    mode: ClassVar[SourceMode] = SourceMode.POLLING

    @abstractmethod
    async def producer_configs(self) -> list[ProducerConfig]:
        """The destination topics (the runtime creates their producers before intake starts)."""

    async def poll(self) -> Sequence[SourceEnvelope | SourceRecord]:
        """Polling mode: return what is available now (an empty list when nothing is)."""
        raise NotImplementedError(f"{type(self).__name__} is a polling source but does not implement poll()")

    async def start_streaming(self, sender: SourceSender) -> None:
        """Streaming mode: start pushing records through ``sender`` and return."""
        raise NotImplementedError(f"{type(self).__name__} is a streaming source but does not implement it")

    async def commit(self, offsets: list[Offset]) -> None:
        """Persist positions: every record up to each offset is acknowledged by the broker (published or
        dead-lettered). One offset per offset partition, the newest; called from one task, never twice at
        once. Raising Fatal stops the runtime; any other error is logged (the next commit covers it)."""


class SinkConnector(_ConnectorBase):
    """Exports data from Danube.

    The runtime runs one consumer and one batch per :class:`ConsumerConfig` from :meth:`consumer_configs`
    and hands each due batch to :meth:`write`.

    Failure semantics (see :mod:`danube_connect_core.sink_batch`):

    - ``write`` returns: every record not reported is durably written and is acked (invariant 1); records
      reported with ``batch.reject(record, reason)`` are dead-lettered, then acked (invariant 5); records
      reported with ``batch.retry(record, reason)`` are handed to ``write`` again after a backoff.
    - ``write`` raises Retryable, or any exception that is not Fatal: the whole batch is written again
      after a backoff (an outage is never poison, invariant 5); when the retry budget is exhausted the
      connector exits 1 without acking it. Writes should be idempotent (invariant 2): a retry may repeat
      records that did reach the target.
    - ``write`` raises Fatal: the runtime drains and exits 1; the batch is not acked. InvalidData escaping
      ``write`` is treated the same way, as a connector bug: it cannot say which record is bad (catch it
      and call ``batch.reject``).
    - With ``[errors] tolerance = "none"`` the first rejected record is fatal instead of dead-lettered.
    """

    @abstractmethod
    async def consumer_configs(self) -> list[ConsumerConfig]:
        """The subscriptions to consume (one consumer and one batch per config); the ``mapping`` of a
        config comes back as ``batch.mapping`` with each of its batches."""

    @abstractmethod
    async def write(self, batch: SinkBatch[Any]) -> None:
        """Write ``batch.records`` durably; report the exceptions with ``batch.reject``/``batch.retry``.

        Called for one batch at a time (connectors need not be re-entrant).
        """


def describe(connector: Any) -> str:
    return getattr(connector, "name", "") or type(connector).__name__
