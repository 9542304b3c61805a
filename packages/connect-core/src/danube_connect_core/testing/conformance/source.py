"""What a source connector implements to register for the conformance kit, and its check.

A :class:`SourceUpstream` is the source's real external system under a directory: it writes the TOML
that routes the upstream's records to one Danube topic, hands record ``i`` (:func:`payload` of ``i``) to
the upstream and says whether the upstream acknowledged it, and finds ``i`` again in a message the
connector published. A :class:`SourceCase` names the connector and says whether it publishes an
acknowledged record exactly once (``idempotent``) or at least once.

:func:`check_source_sigterm_restart` - records fed continuously; SIGTERM mid-stream exits 0 within the
shutdown timeout (invariant 6); a second process with the same config takes over; every record the
upstream acknowledged is on the topic (invariant 1), exactly once when the case is idempotent.

:func:`check_source_bad_input` - the upstream's bad inputs among good records: each dead-lettered with
its reason, never on the topic; every good record on the topic (invariants 4 and 5).
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from danube_connect_core.testing.conformance.probes import (
    conformance_broker,
    metric,
    stop_cleanly,
    topic_messages,
    wait_until,
)
from danube_connect_core.testing.conformance.verdicts import sample
from danube_connect_core.testing.harness import ConnectorProcess
from danube_connect_core.testing.toml_writer import write_connector_toml
from danube_connect_core.testing.waits import settled, start_ready

__all__ = ["SourceCase", "SourceUpstream", "check_source_bad_input", "check_source_sigterm_restart"]

TOPIC = "/default/conformance-source"


class SourceUpstream(ABC):
    """One source's real upstream under ``root``, and the TOML that points the source at it."""

    #: The connector's TOML section (``[webhook]``, ``[mqtt]``, ...).
    section_name: str

    def __init__(self, root: Path) -> None:
        self.root = root
        #: Environment for the source process, on top of the test's own.
        self.env: dict[str, str] = {"LOG_FORMAT": "json"}

    @abstractmethod
    def section(self, topic: str) -> dict[str, Any]:
        """The connector's whole section, routing every upstream record to ``topic`` (reliable, with
        several partitions where the connector lets the config say so)."""

    @abstractmethod
    async def send(self, i: int) -> bool:
        """Hand record ``i`` (e.g. :func:`~danube_connect_core.testing.conformance.target.payload`) to
        the upstream. True once the upstream acknowledged it (so it
        must reach the topic), False when it was refused (the connector is down or stopping). Raises
        AssertionError for an answer a conforming connector never gives."""

    def bad_records(self) -> list[bytes]:
        """Upstream inputs the connector must dead-letter with a reason (e.g. a payload that is not the
        configured format), handed over with :meth:`send_bad`. Default: none (the check is skipped)."""
        return []

    async def send_bad(self, data: bytes) -> None:
        """Hand one of :meth:`bad_records` to the upstream as it is (acknowledged by the upstream)."""
        raise NotImplementedError(f"{type(self).__name__} declares bad records but cannot send them")

    @property
    def dead_letter_topic(self) -> str:
        """The default dead-letter topic of :meth:`connector_name` (``/default/<name>-dlq``)."""
        return f"/default/{self.connector_name()}-dlq"

    def received_id(self, message_payload: Any) -> int:
        """``i`` of a published message's decoded JSON payload. Default: its ``"i"`` field."""
        return int(message_payload["i"])

    async def start(self) -> None:
        """Bring the upstream up. Default: nothing to do."""
        return None

    async def stop(self) -> None:
        """Tear the upstream down. Default: nothing to do."""
        return None

    def connector_name(self) -> str:
        return f"conformance-{self.section_name}"

    def write_config(self, broker_url: str, topic: str, *, processing: dict[str, Any] | None = None) -> Path:
        """Write ``<root>/source.toml`` and return its path: metrics on a free port, a 20 s shutdown
        timeout, fast retries, and :meth:`section`."""
        return write_connector_toml(
            self.root / "source.toml",
            broker_url,
            self.connector_name(),
            retry={"max_retries": 10, "retry_backoff_ms": 50, "max_backoff_ms": 500},
            processing={"shutdown_timeout_ms": 20_000, **(processing or {})},
            **{self.section_name: self.section(topic)},
        )


@dataclass(frozen=True)
class SourceCase:
    """One source connector under test: ``name`` for ``danube-connect run``, whether an acknowledged
    record is published exactly once (``idempotent``) or at least once, and its upstream type."""

    name: str
    idempotent: bool
    upstream_type: Callable[[Path], SourceUpstream]

    def __str__(self) -> str:
        return self.name

    @contextlib.asynccontextmanager
    async def open_upstream(self, directory: Path) -> AsyncIterator[SourceUpstream]:
        """A started upstream under ``directory``; stopped on exit."""
        upstream = self.upstream_type(directory)
        await upstream.start()
        try:
            yield upstream
        finally:
            await upstream.stop()


class _Feed:
    """Records ``0, 1, 2 ...`` handed to the upstream one after the other until :meth:`stop`."""

    def __init__(self, upstream: SourceUpstream, pause_s: float = 0.005) -> None:
        self.upstream = upstream
        self.pause_s = pause_s
        self.sent = 0
        self.accepted: set[int] = set()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            i = self.sent
            self.sent += 1
            if await self.upstream.send(i):
                self.accepted.add(i)
            await asyncio.sleep(self.pause_s)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


def _arrived(broker: Any, upstream: SourceUpstream, topic: str) -> list[int]:
    messages = topic_messages(broker, topic) or []
    return [upstream.received_id(orjson.loads(m.payload)) for m in messages]


async def check_source_sigterm_restart(
    case: SourceCase, directory: Path, *, shutdown_timeout_ms: int = 20_000
) -> None:
    """Records fed to the upstream without pause; once 200 are on the topic the source is SIGTERMed, a
    second process with the same config takes over, and the feed goes on into it.

    Asserts: the first process exits 0 without hitting its shutdown timeout (it stopped intake and
    finished what was in flight, invariant 6); every record the upstream acknowledged is on the topic
    (invariant 1), exactly once when the case is idempotent; nothing is on the topic that was never sent;
    the second process exits 0 after SIGTERM too.
    """
    async with (
        conformance_broker(directory / "broker") as broker,
        case.open_upstream(directory / "upstream") as upstream,
    ):
        config = upstream.write_config(
            broker.url, TOPIC, processing={"shutdown_timeout_ms": shutdown_timeout_ms}
        )
        first = ConnectorProcess(case.name, config, env=upstream.env)
        second = ConnectorProcess(case.name, config, env=upstream.env)
        feed = _Feed(upstream)
        try:
            await start_ready(first, within=90)
            feed.start()

            async def flowing() -> bool:
                return len(_arrived(broker, upstream, TOPIC)) >= 200

            await wait_until(flowing, f"200 records on {TOPIC}", within=120, proc=first)
            await stop_cleanly(first, within=shutdown_timeout_ms / 1000 + 60)

            await start_ready(second, within=90)
            accepted_at_restart = len(feed.accepted)

            async def flowing_again() -> bool:
                return len(feed.accepted) >= accepted_at_restart + 200

            await wait_until(
                flowing_again, "200 more records accepted after the restart", within=120, proc=second
            )
            await feed.stop()

            async def all_arrived() -> bool:
                return feed.accepted <= set(_arrived(broker, upstream, TOPIC))

            try:
                await wait_until(all_arrived, "every accepted record on the topic", within=120, proc=second)
            except AssertionError:
                missing = feed.accepted - set(_arrived(broker, upstream, TOPIC))
                raise AssertionError(
                    f"{len(missing)} of {len(feed.accepted)} acknowledged records lost, "
                    f"e.g. {sample(missing)}"
                ) from None
            await stop_cleanly(second, within=shutdown_timeout_ms / 1000 + 60)
        finally:
            await feed.stop()
            first.kill()
            second.kill()
        counts = Counter(_arrived(broker, upstream, TOPIC))
        foreign = counts.keys() - set(range(feed.sent))
        assert not foreign, f"records on the topic that were never sent: {sample(foreign)}"
        if case.idempotent:
            repeated = {i: c for i, c in counts.items() if c > 1}
            assert not repeated, (
                f"{len(repeated)} records published twice or more (i, copies): {sample(repeated)}"
            )


async def check_source_bad_input(case: SourceCase, directory: Path, *, n: int = 300) -> None:
    """``n`` good records with the upstream's :meth:`~SourceUpstream.bad_records` spread among them.

    Asserts: every good record is on the topic (exactly once when idempotent) and nothing else is;
    ``danube_connector_dead_lettered_total`` counts each bad input once; the dead-letter topic holds
    exactly the bad inputs (their original bytes) with a non-empty ``error.reason``; the source keeps
    running and exits 0 on SIGTERM.
    """
    async with (
        conformance_broker(directory / "broker") as broker,
        case.open_upstream(directory / "upstream") as upstream,
    ):
        bad = upstream.bad_records()
        if not bad:
            import pytest

            pytest.skip(f"the {case.name} case declares no bad input")
        config = upstream.write_config(broker.url, TOPIC)
        proc = ConnectorProcess(case.name, config, env=upstream.env)
        accepted: set[int] = set()
        try:
            port = await start_ready(proc, within=90)
            step = max(1, n // (len(bad) + 1))
            queue = list(bad)
            for i in range(n):
                if i % step == step - 1 and queue:
                    await upstream.send_bad(queue.pop(0))
                if await upstream.send(i):
                    accepted.add(i)
            for data in queue:
                await upstream.send_bad(data)

            async def all_arrived() -> bool:
                return accepted <= set(_arrived(broker, upstream, TOPIC))

            await wait_until(
                all_arrived, f"the {len(accepted)} good records on the topic", within=120, proc=proc
            )

            async def all_dead_lettered() -> bool:
                return len(topic_messages(broker, upstream.dead_letter_topic) or []) >= len(bad)

            await wait_until(all_dead_lettered, f"{len(bad)} dead letters", within=60, proc=proc)
            # counted when the broker's answer to the dead letter's publish comes back, which can be
            # after the dead letter is on its topic
            dead = await settled(
                lambda: metric(port, "danube_connector_dead_lettered_total"), lambda v: v == len(bad)
            )
            assert dead == len(bad), f"{dead} dead-lettered, {len(bad)} bad inputs:\n{proc.log_tail()}"
            await stop_cleanly(proc, within=80)
        finally:
            proc.kill()
        letters = topic_messages(broker, upstream.dead_letter_topic) or []
        assert Counter(bytes(m.payload) for m in letters) == Counter(bad), (
            "the dead letters are not the bad inputs"
        )
        for letter in letters:
            assert dict(letter.attributes).get("error.reason"), (
                f"a dead letter without a reason: {letter.attributes}"
            )
        counts = Counter(_arrived(broker, upstream, TOPIC))
        assert counts.keys() == accepted, f"on the topic but not sent: {sample(counts.keys() - accepted)}"
        if case.idempotent:
            repeated = {i: c for i, c in counts.items() if c > 1}
            assert not repeated, f"{len(repeated)} records published twice or more: {sample(repeated)}"
