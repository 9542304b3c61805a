"""The conformance checks for a sink connector: real ``danube-connect run`` processes, a real target,
the in-process embedded broker and real faults, each ending in exact counts.

Every check takes a :class:`~danube_connect_core.testing.conformance.target.SinkCase` and a fresh
directory (``tmp_path``) and raises AssertionError with the process's log tail when the connector
misbehaves:

- :func:`check_sigkill_restart` - SIGKILL mid-stream, restart: nothing acked is missing, nothing lost,
  no duplicate unless the case is not idempotent (invariants 1 and 2);
- :func:`check_sigterm_drains` - SIGTERM under load exits 0 with every acked record stored and every
  stored record acked; a restart drains the rest (invariant 6);
- :func:`check_target_outage` - the target away for 20 s: retried, not ready, nothing lost, nothing
  dead-lettered (invariant 5: an outage is not poison);
- :func:`check_broker_outage` - the broker stopped for 8 s and started again on its data dir: the sink
  stays up, reconnects and writes everything, nothing dead-lettered;
- :func:`check_bad_input` - records the connector must refuse: dead-lettered with a reason, the good
  records beside them written once (invariant 5).

They take minutes (thousands of records through real processes); :mod:`.suite` wraps them as pytest
tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from danube_connect_core.client import DanubeClient
from danube_connect_core.testing.conformance.probes import (
    BROKER_SETTINGS,
    acked_ids,
    backlog,
    conformance_broker,
    drain_and_stop,
    exited_cleanly,
    metric,
    ready_status,
    sent_total,
    start_ready,
    stop_cleanly,
    topic_messages,
    wait_until,
)
from danube_connect_core.testing.conformance.target import (
    PARTITIONS,
    SinkCase,
    SinkTarget,
    payload,
    produce_records,
)
from danube_connect_core.testing.conformance.verdicts import (
    assert_acked_stored,
    assert_exactly_once,
    assert_no_lost_acks,
)
from danube_connect_core.testing.harness import ConnectorProcess, produce

__all__ = [
    "OUTAGE_RETRY",
    "check_bad_input",
    "check_broker_outage",
    "check_sigkill_restart",
    "check_sigterm_drains",
    "check_target_outage",
]

TOPIC = "/default/conformance"
SUBSCRIPTION = "conformance"
#: The ``[retry]`` that rides out an outage: attempts at most ~1 s apart (equal jitter: 0.5 to 1 s) for at
#: least ~8 min. With the default budget (3 retries from 1 s) a sink exits 1 after a few seconds instead,
#: without acking (by design: the broker redelivers to the next process).
OUTAGE_RETRY = {"max_retries": 1000, "retry_backoff_ms": 100, "max_backoff_ms": 1000}
#: A sink starts in a second or two; an engine like chdb on a machine busy with other tests takes longer.
START_WITHIN_S = 90.0


async def _create_topic(broker_url: str) -> None:
    """The topic with :data:`PARTITIONS` partitions, so the sink can subscribe before records flow."""
    await produce(broker_url, TOPIC, [], partitions=PARTITIONS)


async def check_sigkill_restart(case: SinkCase, directory: Path, *, n: int = 10_000) -> None:
    """``n`` records produced while the sink runs; SIGKILL once a third is written; a second process with
    the same config takes over.

    Asserts: at the kill, every record the broker holds as acknowledged is in the target (invariant 1);
    after the restart drained the subscription the target holds records ``0..n-1`` exactly once (at
    least once when the case is not idempotent); neither process gave an ack up; the target's own
    :meth:`~SinkTarget.verify`.
    """
    async with (
        conformance_broker(directory / "broker") as broker,
        case.open_target(directory / "target") as target,
    ):
        config = target.write_config(broker.url, TOPIC, SUBSCRIPTION)
        await _create_topic(broker.url)
        first = ConnectorProcess(case.name, config, env=target.env)
        second = ConnectorProcess(case.name, config, env=target.env)
        producing: asyncio.Task[None] | None = None
        try:
            port = await start_ready(first, within=START_WITHIN_S)
            producing = asyncio.create_task(produce_records(broker.url, TOPIC, range(n)))

            async def a_third_written() -> bool:
                return await sent_total(port) >= n // 3

            await wait_until(a_third_written, f"{n // 3} records written", within=240, proc=first)
            first.kill()
            assert first.proc is not None and first.proc.returncode == -signal.SIGKILL

            acked = acked_ids(broker, TOPIC, SUBSCRIPTION)  # the sink is dead: neither side moves now
            stored = await target.stored_ids()
            assert_acked_stored(acked, stored)
            assert n // 3 <= len(set(stored)) < n, f"not mid-stream: {len(set(stored))} stored at the kill"

            await start_ready(second, within=START_WITHIN_S)
            await producing
            await drain_and_stop(second, broker, TOPIC, SUBSCRIPTION, within=300)
        finally:
            _stop(producing, first, second)
        await _verdicts_after_restart(case, target, n, first, second)


async def check_sigterm_drains(
    case: SinkCase, directory: Path, *, n: int = 4_000, shutdown_timeout_ms: int = 20_000
) -> None:
    """SIGTERM once a quarter is written, with records in flight and the producer still producing (its
    last tenth is sent after the SIGTERM); a restart drains the rest.

    Asserts: the SIGTERMed sink exits 0 without hitting its shutdown timeout (it stopped intake, finished
    the batch in flight, flushed and acked, invariant 6); at that exit the records the broker holds as
    acknowledged are exactly the records in the target; after the restart the target holds ``0..n-1``
    exactly once (at least once when not idempotent); no ack was given up; :meth:`~SinkTarget.verify`.
    """
    held_back = n * 9 // 10  # records held_back..n are produced only after the SIGTERM
    in_flight = 100  # records produced but not acked at the SIGTERM: at least this many
    async with (
        conformance_broker(directory / "broker") as broker,
        case.open_target(directory / "target") as target,
    ):
        config = target.write_config(
            broker.url, TOPIC, SUBSCRIPTION, processing={"shutdown_timeout_ms": shutdown_timeout_ms}
        )
        await _create_topic(broker.url)
        first = ConnectorProcess(case.name, config, env=target.env)
        second = ConnectorProcess(case.name, config, env=target.env)
        producing: asyncio.Task[None] | None = None
        try:
            port = await start_ready(first, within=START_WITHIN_S)
            sigterm_sent = asyncio.Event()

            async def produce_all() -> None:
                # The last records wait for the SIGTERM, so the producer is still producing when it
                # arrives however fast this machine produces.
                await produce_records(broker.url, TOPIC, range(held_back))
                await sigterm_sent.wait()
                await produce_records(broker.url, TOPIC, range(held_back, n))

            producing = asyncio.create_task(produce_all())

            async def flowing() -> bool:
                written = await sent_total(port) >= n // 4
                return written and backlog(broker, TOPIC, SUBSCRIPTION) >= in_flight

            await wait_until(flowing, f"{n // 4} written and {in_flight} in flight", within=240, proc=first)
            first.signal(signal.SIGTERM)
            sigterm_sent.set()
            # Generous: the drain itself is bounded by the runtime (exit 1 past the timeout); this
            # deadline only adds the process's own teardown.
            await exited_cleanly(first, within=shutdown_timeout_ms / 1000 + 60)

            acked = acked_ids(broker, TOPIC, SUBSCRIPTION)  # the sink is gone: neither side moves now
            stored = await target.stored_ids()
            assert_acked_stored(acked, stored)
            unacked = set(stored) - set(acked)
            assert not unacked, f"{len(unacked)} records written but left unacknowledged by the drain"
            assert n // 4 <= len(set(stored)) < n, f"{len(set(stored))} stored at the SIGTERM exit"

            await start_ready(second, within=START_WITHIN_S)
            await producing
            await drain_and_stop(second, broker, TOPIC, SUBSCRIPTION, within=300)
        finally:
            _stop(producing, first, second)
        await _verdicts_after_restart(case, target, n, first, second)


def _stop(producing: asyncio.Task[None] | None, *procs: ConnectorProcess) -> None:
    for proc in procs:
        proc.kill()
    if producing is not None and not producing.done():
        producing.cancel()


async def _verdicts_after_restart(
    case: SinkCase, target: SinkTarget, n: int, first: ConnectorProcess, second: ConnectorProcess
) -> None:
    """Neither process gave an ack up; the target holds ``0..n-1`` (exactly once when idempotent)."""
    for proc in (first, second):
        assert_no_lost_acks(proc)
    assert_exactly_once(await target.stored_ids(), n, idempotent=case.idempotent)
    target.verify(n)


class Flow:
    """Records ``0, 1, 2 ...`` produced continuously (``chunk`` every ``interval_s``) until :meth:`stop`."""

    def __init__(self, broker_url: str, *, chunk: int = 40, interval_s: float = 0.5) -> None:
        self.broker_url = broker_url
        self.chunk = chunk
        self.interval_s = interval_s
        self.produced = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> int:
        """Stop after the chunk under way; returns how many records the broker acknowledged."""
        self._stop.set()
        assert self._task is not None
        await self._task
        return self.produced

    def stopped(self) -> bool:
        return self._task is None or self._task.done()

    async def _run(self) -> None:
        client = DanubeClient(self.broker_url)
        try:
            producer = await client.create_producer(
                TOPIC, "conformance-flow", partitions=PARTITIONS, reliable=True, max_in_flight=16
            )
            while not self._stop.is_set():
                ids = range(self.produced, self.produced + self.chunk)
                await asyncio.gather(*(producer.send(orjson.dumps(payload(i))) for i in ids))
                self.produced = ids.stop
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval_s)
            await producer.close()
        finally:
            await client.close()


def _retry_lines(proc: ConnectorProcess) -> list[str]:
    return [line for line in proc.lines if "write to target failed" in line]


async def _sample_until(
    deadline: float, probe: Callable[[], Awaitable[tuple[int, str]]], proc: ConnectorProcess
) -> list[tuple[int, str]]:
    """``probe`` every 0.25 s until ``deadline`` (monotonic); fails at once when ``proc`` exits."""
    samples: list[tuple[int, str]] = []
    while time.monotonic() < deadline:
        assert proc.proc is not None and proc.proc.poll() is None, (
            f"{proc.connector} exited {proc.proc and proc.proc.returncode} during the outage:\n"
            f"{proc.log_tail()}"
        )
        samples.append(await probe())
        await asyncio.sleep(0.25)
    return samples


def _dead_letters(broker: Any, topic: str) -> list[Any]:
    """The dead-letter topic's messages; AssertionError when the topic does not exist (the sink creates
    it at start, so an empty topic proves nothing was dead-lettered, a missing one proves nothing)."""
    messages = topic_messages(broker, topic)
    assert messages is not None, f"no dead-letter topic {topic}"
    return messages


async def check_target_outage(case: SinkCase, directory: Path, *, outage_s: float = 20.0) -> None:
    """The target away for ``outage_s`` seconds (``case.outage``) while records flow, then back.

    Asserts: while it fails the sink retries (``danube_connector_retries_total`` grows, one "write to
    target failed" log line per retry), ``GET /ready`` answers 503 from the first failed write until the
    target is back, and the process does not exit; afterwards ``/ready`` answers 200, the subscription
    drains, SIGTERM exits 0; the target holds every record produced (exactly once when idempotent);
    nothing was dead-lettered. The sink runs with :data:`OUTAGE_RETRY`.
    """
    if case.outage is None:
        import pytest

        pytest.skip(f"the {case.name} case declares no target outage")
    async with (
        conformance_broker(directory / "broker") as broker,
        case.outage(directory / "target") as (target, outage),
    ):
        config = target.write_config(broker.url, TOPIC, SUBSCRIPTION, retry=OUTAGE_RETRY)
        await _create_topic(broker.url)
        # Rust panics (e.g. delta-rs's object_store on a refused connection) in their one-line form.
        proc = ConnectorProcess(case.name, config, env={**target.env, "RUST_BACKTRACE": "0"})
        flow = Flow(broker.url)
        try:
            port = await start_ready(proc, within=START_WITHIN_S)
            flow.start()

            async def some_written() -> bool:
                return await metric(port, "danube_connector_messages_sent_total") >= 2 * flow.chunk

            await wait_until(some_written, "records flowing into the target", within=60, proc=proc)
            assert await metric(port, "danube_connector_retries_total") == 0, proc.log_tail()

            began = time.monotonic()
            await outage.begin()

            async def not_ready() -> bool:
                return (await ready_status(port))[0] == 503

            await wait_until(not_ready, f"/ready 503 once {outage.description}", within=60, proc=proc)
            # From the first failed write until the target is back: never ready, never exited.
            during = await _sample_until(began + outage_s, lambda: ready_status(port), proc)
            assert [s for s, _ in during if s != 503] == [], (during, proc.log_tail())
            retried = await metric(port, "danube_connector_retries_total")
            assert retried >= 2, f"{retried} retries during the outage:\n{proc.log_tail()}"
            assert len(_retry_lines(proc)) >= 2, proc.log_tail()
            await outage.end()

            async def ready() -> bool:
                return (await ready_status(port))[0] == 200

            await wait_until(ready, "/ready 200 after the target came back", within=60, proc=proc)
            produced = await flow.stop()

            async def drained() -> bool:
                return backlog(broker, TOPIC, SUBSCRIPTION) == 0

            await wait_until(drained, f"all {produced} records written", within=120, proc=proc)
            assert await metric(port, "danube_connector_dead_lettered_total") == 0, proc.log_tail()
            retries = await metric(port, "danube_connector_retries_total")
            await stop_cleanly(proc)
        finally:
            proc.kill()
            if not flow.stopped():
                await flow.stop()
        assert _dead_letters(broker, target.dead_letter_topic) == []
        # One log line per retry: nothing retried silently, nothing logged without a retry.
        assert len(_retry_lines(proc)) == retries, proc.log_tail()
        assert_exactly_once(await target.stored_ids(), produced, idempotent=case.idempotent)
        target.verify(produced)


async def check_broker_outage(
    case: SinkCase, directory: Path, *, n: int = 2_000, outage_s: float = 8.0
) -> None:
    """Half the records written, the broker stopped for ``outage_s`` seconds and started again on the same
    port and data dir, then the other half produced.

    Asserts: the sink does not exit while the broker is away; after the restart it reconnects by itself
    and drains the subscription; SIGTERM exits 0; the target holds ``0..n-1`` exactly once (at least once
    when not idempotent); nothing was dead-lettered (a broker outage is not poison). The sink runs with
    :data:`OUTAGE_RETRY`.
    """
    from danube_embedded_broker import BrokerConfig, EmbeddedBroker

    data_dir = directory / "broker"
    broker = EmbeddedBroker(BrokerConfig(**{**BROKER_SETTINGS, "data_dir": data_dir}))
    await broker.start()
    try:
        async with case.open_target(directory / "target") as target:
            config = target.write_config(broker.url, TOPIC, SUBSCRIPTION, retry=OUTAGE_RETRY)
            await _create_topic(broker.url)
            proc = ConnectorProcess(case.name, config, env=target.env)
            try:
                await start_ready(proc, within=START_WITHIN_S)
                await produce_records(broker.url, TOPIC, range(n // 2))

                async def first_half_written() -> bool:
                    return backlog(broker, TOPIC, SUBSCRIPTION) == 0

                await wait_until(first_half_written, f"{n // 2} records written", within=120, proc=proc)
                port, url = broker.port, broker.url
                await broker.stop()
                deadline = time.monotonic() + outage_s
                while time.monotonic() < deadline:
                    assert proc.proc is not None and proc.proc.poll() is None, (
                        f"{case.name} exited {proc.proc and proc.proc.returncode} without a broker:\n"
                        f"{proc.log_tail()}"
                    )
                    await asyncio.sleep(0.25)
                broker = EmbeddedBroker(
                    BrokerConfig(**{**BROKER_SETTINGS, "data_dir": data_dir, "port": port})
                )
                assert await broker.start() == url
                await produce_records(broker.url, TOPIC, range(n // 2, n))
                await drain_and_stop(proc, broker, TOPIC, SUBSCRIPTION, within=300)
            finally:
                proc.kill()
            assert _dead_letters(broker, target.dead_letter_topic) == []
            assert_exactly_once(await target.stored_ids(), n, idempotent=case.idempotent)
            target.verify(n)
    finally:
        await broker.stop()


async def check_bad_input(case: SinkCase, directory: Path, *, n: int = 500) -> None:
    """``n`` good records with the target's :meth:`~SinkTarget.bad_records` spread among them.

    Asserts: the sink keeps running and drains the subscription; ``danube_connector_dead_lettered_total``
    counts each bad record once; the dead-letter topic holds exactly the bad records (their original
    payloads) with a non-empty ``error.reason`` and ``error.connector``; SIGTERM exits 0; the target holds
    the good records ``0..n-1`` exactly once (at least once when not idempotent) and none of the bad ones.
    """
    async with (
        conformance_broker(directory / "broker") as broker,
        case.open_target(directory / "target") as target,
    ):
        bad = target.bad_records()
        if not bad:
            import pytest

            pytest.skip(f"the {case.name} case declares no bad records")
        config = target.write_config(broker.url, TOPIC, SUBSCRIPTION)
        await _create_topic(broker.url)
        records: list[Any] = [payload(i) for i in range(n)]
        step = max(1, n // (len(bad) + 1))
        for k, record in enumerate(bad):  # spread over the stream, so bad and good share batches
            records.insert((k + 1) * step + k, record)
        proc = ConnectorProcess(case.name, config, env=target.env)
        try:
            port = await start_ready(proc, within=START_WITHIN_S)
            await produce(broker.url, TOPIC, records, partitions=PARTITIONS, reliable=True)

            async def drained() -> bool:
                return backlog(broker, TOPIC, SUBSCRIPTION) == 0

            await wait_until(drained, f"{len(records)} records handled", within=240, proc=proc)
            dead = await metric(port, "danube_connector_dead_lettered_total")
            assert dead == len(bad), f"{dead} dead-lettered, {len(bad)} bad records:\n{proc.log_tail()}"
            await stop_cleanly(proc)
        finally:
            proc.kill()
        letters = _dead_letters(broker, target.dead_letter_topic)
        assert _canonical(json.loads(m.payload) for m in letters) == _canonical(bad), (
            f"dead-lettered {len(letters)} records, not exactly the {len(bad)} bad ones"
        )
        for letter in letters:
            attributes = dict(letter.attributes)
            assert attributes.get("error.reason"), f"a dead letter without a reason: {attributes}"
            assert attributes.get("error.connector") == target.connector_name(), attributes
        stored = await target.stored_ids()
        assert_exactly_once(stored, n, idempotent=case.idempotent)
        target.verify(n)


def _canonical(values: Any) -> Counter[str]:
    """JSON values as a multiset, independent of key order (integers of any size kept exact)."""
    return Counter(json.dumps(v, sort_keys=True) for v in values)
