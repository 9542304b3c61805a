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

from pathlib import Path

import pytest
from danube_connect_core.testing.conformance import SinkCase, check_sigkill_restart


@pytest.mark.slow
async def test_sigkill_mid_stream_then_restart_stores_every_record_exactly_once(
    sink_case: SinkCase, tmp_path: Path
) -> None:
    await check_sigkill_restart(sink_case, tmp_path, n=10_000)
