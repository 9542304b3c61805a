"""What a sink connector implements to register for the conformance kit: a real target and its case.

A :class:`SinkTarget` opens the connector's real external system under a directory, writes the TOML that
points the connector at it, and reads back what the connector stored. A :class:`SinkCase` names the
connector (``danube-connect run <name>``), says whether its writes are idempotent, and which target
type it runs against. The checks in :mod:`~danube_connect_core.testing.conformance.sink_checks` need
nothing else.

Every check writes the same records: :func:`payload` of ``i`` = ``{"i": i, "name": "n<i>", "v": [3
floats]}``; a target reports the ``i`` of each stored record (:meth:`SinkTarget.stored_ids`).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from danube_connect_core.testing.harness import produce
from danube_connect_core.testing.toml_writer import write_connector_toml

__all__ = [
    "PARTITIONS",
    "WINDOW",
    "Outage",
    "OutageFactory",
    "SinkCase",
    "SinkTarget",
    "payload",
    "produce_records",
]

#: Partitions of the topics the checks produce to.
PARTITIONS = 4
#: The broker's in-flight window per subscription and partition, and the sinks' matching
#: ``processing.max_unacked_messages``: large, so batches of 1,000 fill and a 10,000-record drain is quick.
WINDOW = 1000


def payload(i: int) -> dict[str, Any]:
    """Record ``i``: every target stores ``i`` (a vector store may use ``v`` as the vector)."""
    return {"i": i, "name": f"n{i}", "v": [float(i), 1.0, 0.5]}


async def produce_records(broker_url: str, topic: str, ids: Iterable[int]) -> None:
    """Publish :func:`payload` of each id on ``topic`` (reliable, :data:`PARTITIONS` partitions),
    concurrently within the producer's window; returns once the broker acknowledged every one."""
    await produce(broker_url, topic, [payload(i) for i in ids], partitions=PARTITIONS, reliable=True)


class SinkTarget(ABC):
    """One sink's real target under ``root``, and the TOML that points the sink at it.

    Implement :attr:`section_name`, :meth:`section`, :meth:`mapping` and :meth:`stored_ids`; override
    :meth:`start` / :meth:`stop` when the target is a server, :meth:`bad_records` to take part in the
    bad-input check and :meth:`verify` for target-specific verdicts.
    """

    #: The connector's TOML section (``[surrealdb]``, ``[deltalake]``, ...).
    section_name: str

    def __init__(self, root: Path) -> None:
        self.root = root
        #: Environment for the sink process, on top of the test's own.
        self.env: dict[str, str] = {"LOG_FORMAT": "json"}

    @abstractmethod
    def section(self) -> dict[str, Any]:
        """The connector section's connection settings (without topic mappings)."""

    @abstractmethod
    def mapping(self) -> dict[str, Any]:
        """The target fields of a topic mapping (table, collection ...)."""

    @abstractmethod
    async def stored_ids(self) -> list[int]:
        """The ``i`` of every stored record, with multiplicity (a duplicate shows twice), in no order.

        The checks call it only while no sink process of this target runs (an embedded store may belong
        to one process at a time). Raises whatever the target raises when it cannot be read.
        """

    async def start(self) -> None:
        """Bring the target up (create tables, start servers). Default: nothing to do."""
        return None

    async def stop(self) -> None:
        """Tear the target down. Default: nothing to do (its files live under ``root``)."""
        return None

    def bad_records(self) -> list[Any]:
        """JSON values the connector must reject with a reason (dead-lettered, never stored) while it
        writes the good records beside them. Each must carry no ``i`` the good records use. Default: none
        (the bad-input check is skipped)."""
        return []

    def verify(self, n: int) -> None:
        """Extra verdicts after a check stored records ``0..n-1`` (e.g. an HTTP target's idempotency
        keys). Raise AssertionError on a violation. Default: nothing."""
        return None

    def connector_name(self) -> str:
        """The ``connector_name`` the checks configure (it names the dead-letter topic)."""
        return f"conformance-{self.section_name}"

    @property
    def dead_letter_topic(self) -> str:
        """The default dead-letter topic of :meth:`connector_name` (``/default/<name>-dlq``)."""
        return f"/default/{self.connector_name()}-dlq"

    def write_config(
        self,
        broker_url: str,
        topic: str,
        subscription: str,
        *,
        processing: dict[str, Any] | None = None,
        retry: dict[str, Any] | None = None,
        section: dict[str, Any] | None = None,
        mapping: dict[str, Any] | None = None,
    ) -> Path:
        """Write ``<root>/<subscription>.toml`` for this sink and return its path.

        Defaults: retries every 50..500 ms up to 10 times; batches of 1,000 flushed after 1 s or 100 ms
        idle; ``max_unacked_messages`` = :data:`WINDOW` (start the broker with the same window);
        a 20 s shutdown timeout; metrics on a free port. Each override dict updates its table key by key.
        """
        topic_mapping = {"topic": topic, "subscription": subscription, **self.mapping(), **(mapping or {})}
        return write_connector_toml(
            self.root / f"{subscription}.toml",
            broker_url,
            self.connector_name(),
            retry={"max_retries": 10, "retry_backoff_ms": 50, "max_backoff_ms": 500, **(retry or {})},
            processing={
                "batch_size": 1000,
                "batch_timeout_ms": 1000,
                "batch_idle_ms": 100,
                "max_unacked_messages": WINDOW,
                "shutdown_timeout_ms": 20_000,
                **(processing or {}),
            },
            **{self.section_name: {**self.section(), **(section or {}), "topic_mappings": [topic_mapping]}},
        )


@dataclass(frozen=True)
class Outage:
    """How a target goes away (``begin``) and comes back (``end``), told in ``description``."""

    description: str
    begin: Callable[[], Awaitable[object]]
    end: Callable[[], Awaitable[object]]


#: ``factory(root)`` -> an async context manager yielding a started target under ``root`` and the outage
#: that takes it away; everything torn down on exit.
OutageFactory = Callable[[Path], contextlib.AbstractAsyncContextManager[tuple[SinkTarget, Outage]]]


@dataclass(frozen=True)
class SinkCase:
    """One sink connector under test.

    ``name`` is the connector name of ``danube-connect run``; ``idempotent`` says whether a redelivery
    must NOT duplicate a record (False: at least once is enough); ``target_type`` builds its target.
    ``outage`` (optional) makes the target unavailable for the target-outage check
    (:func:`~danube_connect_core.testing.conformance.outages.restart_outage` for a server target,
    :func:`~danube_connect_core.testing.conformance.outages.disk_full_outage` for an embedded store).
    """

    name: str
    idempotent: bool
    target_type: Callable[[Path], SinkTarget]
    outage: OutageFactory | None = None

    def __str__(self) -> str:
        return self.name

    @contextlib.asynccontextmanager
    async def open_target(self, directory: Path) -> AsyncIterator[SinkTarget]:
        """A started target under ``directory``; stopped on exit."""
        target = self.target_type(directory)
        await target.start()
        try:
            yield target
        finally:
            await target.stop()
