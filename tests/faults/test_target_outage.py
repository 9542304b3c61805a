"""A 20 s target outage under every sink, while records flow: retried, not-ready, nothing lost or
dead-lettered.

For each sink (surrealdb, delta-lake, qdrant, clickhouse, http) as a real ``danube-connect run`` process on
a reliable topic of 4 partitions: records are produced continuously; the target becomes unavailable for
20 s, then comes back, and the stream goes on. The outages are real faults:

- http: the target server stops (its port is closed: connection refused), then listens again on the same
  port with the same state;
- delta-lake: the table lives on S3 (moto_server) behind a TCP proxy that refuses connections for 20 s
  (a restarted moto_server would lose its in-memory bucket; the proxy cuts the network instead);
- surrealdb (surrealkv), qdrant (local mode), clickhouse (chdb): the engine runs inside the sink process,
  so its outage is its storage failing. The store lives on a small tmpfs that is filled to ENOSPC for
  20 s, then freed. (A read-only remount is not possible here: the kernel refuses ``remount,ro`` while a
  file is open for writing, and each of these engines keeps one open: surrealkv its commit log, qdrant its
  SQLite file, chdb its status file.)

Proved for each sink, exactly:

- while the target fails, the sink retries (``danube_connector_retries_total`` grows, one "write to target
  failed" log line per retry), ``GET /ready`` answers 503 from the first failed write until the target is
  back, and the process does not exit;
- after recovery ``/ready`` answers 200 again, the subscription drains, SIGTERM exits 0;
- the target holds exactly the records produced, each once (every sink is idempotent; the http target
  de-duplicates on the Idempotency-Key, and each record carried one stable key);
- nothing was dead-lettered: ``danube_connector_dead_lettered_total`` is 0 and the dead-letter topic holds
  no message (invariant 5: a target outage is not poison).

The ``[retry]`` setting that makes a sink wait out an outage: ``max_retries = 1000``,
``retry_backoff_ms = 100``, ``max_backoff_ms = 1000`` - attempts at most ~1 s apart (equal jitter: 0.5 to
1 s) for at least ~8 min, so a 20 s outage is ridden out with a wide margin. With the default budget (3
retries from 1 s) a sink exits 1 after a few seconds instead, without acking (by design: the broker
redelivers to the next process).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from danube_connect_core.testing.conformance import SinkCase, check_target_outage

pytestmark = pytest.mark.slow


async def test_target_outage_of_20s_is_retried_not_ready_and_loses_nothing(
    sink_case: SinkCase, tmp_path: Path
) -> None:
    await check_target_outage(sink_case, tmp_path, outage_s=20.0)
