"""SIGTERM of every sink while records are still being produced, then a restart that drains the rest.

For each sink (surrealdb, delta-lake, qdrant, clickhouse, http) as a real ``danube-connect run`` process
against its real target, with a 20 s ``processing.shutdown_timeout_ms``:

- the sink is SIGTERMed once a quarter is written while records are in flight and the producer is still
  producing (its last tenth is sent after the SIGTERM);
- the SIGTERMed sink exits 0: the runtime exits 1 when its drain outlasts the shutdown timeout, so 0 means
  it stopped intake, finished the batch in flight, flushed and acked within the timeout (invariant 6);
- at that exit, the records the broker holds as acknowledged are exactly the records in the target:
  nothing acked is missing (invariant 1) and nothing written was left unacknowledged (a clean drain);
- a restart with the same config drains the rest: the target then holds exactly the records produced
  (nothing in flight lost, none twice), and neither process gave an ack up.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
from danube_connect_core.testing import ConnectorProcess, produce
from sink_cases import (
    CASES,
    PARTITIONS,
    WINDOW,
    HttpTarget,
    SinkCase,
    acked_ids,
    assert_acked_stored,
    assert_exactly_once,
    assert_no_lost_acks,
    backlog,
    drain_and_stop,
    exit_code,
    produce_records,
    sent_total,
    start_ready,
    wait_until,
)

N = 4_000
#: Records N * 0.9 .. N are produced only after the SIGTERM (the restart drains them).
HELD_BACK = N * 9 // 10
#: Records produced but not acked at the SIGTERM: at least this many.
IN_FLIGHT = 100
TOPIC = "/default/faults-sigterm"
SUBSCRIPTION = "faults-sigterm"
SHUTDOWN_TIMEOUT_MS = 20_000


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=str)
async def test_sigterm_under_load_exits_0_with_every_acked_record_stored_and_restart_drains_rest(
    case: SinkCase, broker_factory: Any, tmp_path: Path
) -> None:
    # A long ack timeout: redeliveries come only from the stop, not from a slow batch on a loaded machine.
    broker = await broker_factory(max_unacked_messages=WINDOW, ack_timeout_ms=120_000)
    async with case.open_target(tmp_path / "target") as target:
        config = target.write_config(
            broker.url, TOPIC, SUBSCRIPTION, processing={"shutdown_timeout_ms": SHUTDOWN_TIMEOUT_MS}
        )
        await produce(broker.url, TOPIC, [], partitions=PARTITIONS)  # the topic, so the sink can subscribe
        first = ConnectorProcess(case.name, config, env=target.env)
        second = ConnectorProcess(case.name, config, env=target.env)
        producing: asyncio.Task[None] | None = None
        try:
            port = await start_ready(first)
            sigterm_sent = asyncio.Event()

            async def produce_all() -> None:
                # The last records wait for the SIGTERM, so the producer is still producing when it
                # arrives however fast this machine produces.
                await produce_records(broker.url, TOPIC, range(HELD_BACK))
                await sigterm_sent.wait()
                await produce_records(broker.url, TOPIC, range(HELD_BACK, N))

            producing = asyncio.create_task(produce_all())

            async def flowing() -> bool:
                # A quarter written, and records produced but not yet acked: the sink is mid-stream.
                written = await sent_total(port) >= N // 4
                return written and backlog(broker, TOPIC, SUBSCRIPTION) >= IN_FLIGHT

            await wait_until(flowing, f"{N // 4} written and {IN_FLIGHT} in flight", within=240, proc=first)
            first.signal(signal.SIGTERM)
            sigterm_sent.set()
            # Generous: the drain itself is bounded by the runtime (exit 1 past the timeout); this
            # deadline only adds the process's own teardown.
            code = await exit_code(first, within=SHUTDOWN_TIMEOUT_MS / 1000 + 60)
            assert code == 0, f"exit {code} after SIGTERM:\n{first.log_tail()}"
            assert not any("shutdown timeout" in line for line in first.lines), first.log_tail()

            acked = acked_ids(broker, TOPIC, SUBSCRIPTION)  # the sink is gone: neither side moves now
            stored = await target.stored_ids()
            assert_acked_stored(acked, stored)
            unacked = set(stored) - set(acked)
            assert not unacked, f"{len(unacked)} records written but left unacknowledged by the drain"
            assert N // 4 <= len(set(stored)) < N, f"{len(set(stored))} stored at the SIGTERM exit"

            await start_ready(second)
            await producing
            await drain_and_stop(second, broker, TOPIC, SUBSCRIPTION, within=300)
        finally:
            first.kill()
            second.kill()
            if producing is not None and not producing.done():
                producing.cancel()
        for proc in (first, second):
            assert_no_lost_acks(proc)
        assert_exactly_once(await target.stored_ids(), N, idempotent=case.idempotent)
        if isinstance(target, HttpTarget):
            target.assert_stable_keys(N)
