"""SIGKILL of every sink in the middle of a reliable stream, then a restart with the same config.

For each sink (surrealdb, delta-lake, qdrant, clickhouse, http) as a real ``danube-connect run`` process
against its real target: 10,000 records are produced (4 partitions, reliable) while the sink runs; once
about a third is written the sink is SIGKILLed and a second process with the same config takes over.

Proved:
- at the kill, every record the broker holds as acknowledged is in the target (invariant 1: a sink acks
  only after the write succeeded);
- after the restart drained the subscription, the target holds exactly the 10,000 records: none lost, and
  none twice (invariant 2: the idempotent writes absorb the redelivery of what was written but not acked);
- neither process gave an ack up (a lost ack leaves its message unacked until the broker's ack timeout);
- http: the target de-duplicates on Idempotency-Key as a real API does; each record's repeats carried one
  stable key, so there are exactly 10,000 distinct keys.
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
    drain_and_stop,
    produce_records,
    sent_total,
    start_ready,
    wait_until,
)

N = 10_000
TOPIC = "/default/faults-kill"
SUBSCRIPTION = "faults-kill"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=str)
async def test_sigkill_mid_stream_then_restart_stores_every_record_exactly_once(
    case: SinkCase, broker_factory: Any, tmp_path: Path
) -> None:
    # A long ack timeout: only the kill may cause redeliveries, not a slow batch on a loaded machine.
    broker = await broker_factory(max_unacked_messages=WINDOW, ack_timeout_ms=120_000)
    async with case.open_target(tmp_path / "target") as target:
        config = target.write_config(broker.url, TOPIC, SUBSCRIPTION)
        await produce(broker.url, TOPIC, [], partitions=PARTITIONS)  # the topic, so the sink can subscribe
        first = ConnectorProcess(case.name, config, env=target.env)
        second = ConnectorProcess(case.name, config, env=target.env)
        producing: asyncio.Task[None] | None = None
        try:
            port = await start_ready(first)
            producing = asyncio.create_task(produce_records(broker.url, TOPIC, range(N)))

            async def a_third_written() -> bool:
                return await sent_total(port) >= N // 3

            await wait_until(a_third_written, f"{N // 3} records written", within=240, proc=first)
            first.kill()
            assert first.proc is not None and first.proc.returncode == -signal.SIGKILL

            acked = acked_ids(broker, TOPIC, SUBSCRIPTION)  # the sink is dead: neither side moves now
            stored = await target.stored_ids()
            assert_acked_stored(acked, stored)
            assert N // 3 <= len(set(stored)) < N, f"not mid-stream: {len(set(stored))} stored at the kill"

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
