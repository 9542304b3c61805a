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

from pathlib import Path

import pytest
from danube_connect_core.testing.conformance import SinkCase, check_sigterm_drains


@pytest.mark.slow
async def test_sigterm_under_load_exits_0_with_every_acked_record_stored_and_restart_drains_rest(
    sink_case: SinkCase, tmp_path: Path
) -> None:
    await check_sigterm_drains(sink_case, tmp_path, n=4_000, shutdown_timeout_ms=20_000)
