"""PostgreSQL CDC source throughput end to end into Danube, against the raw publish floor.

    uv run python bench/cdc_bench.py [--rows 5000] [--repeats 3]

Setup: the embedded broker in its own process (`BrokerProcess`, defaults), a private PostgreSQL 15 cluster
(wal_level=logical, wal2json; started like the connector's tests), the connector running in this process
through the real SourceRuntime. For each publish window (1 = the connector's default, strict order even
across retries; 16 = opt-in) and each plugin:

- floor: our Danube client publishing the same number of JSON payloads of the same size to a fresh
  reliable topic with the same window (one producer, `asyncio.gather`), i.e. the best this client can do;
- cdc: ``--rows`` inserts (transactions of 100 rows) are committed while the connector is stopped, then
  the connector starts and the clock runs until every change is acknowledged by Danube *and* committed
  to the slot (slot read, decoding, envelope building, publishing, slot advance: everything).

Prints changes/s and the ratio cdc/floor; writes bench/results/cdc.json. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from danube_connect_core.client import DanubeClient
from danube_connect_core.testing import make_config, start_runtime
from danube_embedded_broker.testing import BrokerProcess
from danube_source_postgres_cdc import PostgresCdcSource, PostgresSettings
from danube_source_postgres_cdc.testing import make_cluster, missing_reason
from result_files import result_path

RESULTS = result_path("cdc.json")


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()}


async def floor(url: str, n: int, window: int, payload: bytes) -> float:
    client = DanubeClient(url)
    try:
        producer = await client.create_producer(
            f"/default/floor-{uuid.uuid4().hex[:8]}", "floor", reliable=True, max_in_flight=window
        )
        started = time.perf_counter()
        await asyncio.gather(*(producer.send(payload) for _ in range(n)))
        elapsed = time.perf_counter() - started
        await producer.close()
        return n / elapsed
    finally:
        await client.close()


async def cdc(url: str, dsn: str, n: int, window: int, plugin: str) -> tuple[float, bytes]:
    slot = f"bench_{uuid.uuid4().hex[:8]}"
    topic = f"/default/cdc-{slot}"
    table = f"t_{slot}"
    conn = await asyncpg.connect(dsn)
    await conn.execute(
        f"CREATE TABLE {table} (id int PRIMARY KEY, customer text, amount numeric(12,2),"
        " created timestamptz DEFAULT now(), status text)"
    )
    settings = PostgresSettings.model_validate(
        {
            "dsn": dsn,
            "slot_name": slot,
            "plugin": plugin,
            "publication_name": slot,
            "snapshot_mode": "never",
            "max_in_flight": window,
            "poll_interval_ms": 10,
            "table_mappings": [{"table": table, "danube_topic": topic}],
        }
    )
    config = make_config(url, f"bench-{slot}", settings, processing={"poll_interval_ms": 10})
    # create the slot (and topic), then stop, so that the whole backlog is there when the clock starts
    connector = PostgresCdcSource()
    running = await start_runtime(connector, config)
    while connector._slot is None or connector._decoder is None:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    await running.stop()
    for start in range(0, n, 100):
        await conn.execute(
            f"INSERT INTO {table} (id, customer, amount, status) SELECT g, 'customer-' || g, g * 1.25, 'new'"
            " FROM generate_series($1::int, $2::int) g",
            start,
            min(start + 99, n - 1),
        )
    await conn.close()
    connector = PostgresCdcSource()
    started = time.perf_counter()
    running = await start_runtime(connector, config)
    while not (connector.stats["records"] >= n and connector._acked_end >= connector._last_record_end):  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    sample = orjson.dumps(
        {"before": None, "after": {"id": 1, "customer": "customer-1", "amount": "1.25",
         "created": "2024-05-01T10:00:00.123456+00:00", "status": "new"}, "op": "c",
         "source": {"connector": "postgres-cdc", "name": "bench", "db": "postgres", "schema": "public",
                    "table": table, "lsn": 123456789, "txId": 1234, "ts_ms": 1714557600000,
                    "snapshot": False}, "ts_ms": 1714557600000}
    )  # fmt: skip
    await running.stop()
    return n / elapsed, sample


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    reason = missing_reason()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    root = Path(tempfile.mkdtemp(prefix="danube-cdc-bench-"))
    os.chmod(root, 0o755)
    cluster = make_cluster(root / "pg")
    broker = BrokerProcess(root / "broker")
    url = broker.start()
    results = []
    try:
        dsn = cluster.dsn()
        for window in (1, 16):
            for plugin in ("wal2json", "pgoutput"):
                cdc_rates, floor_rates = [], []
                for _ in range(args.repeats):
                    rate, sample = await cdc(url, dsn, args.rows, window, plugin)
                    cdc_rates.append(rate)
                    floor_rates.append(await floor(url, args.rows, window, sample))
                c, f = statistics.median(cdc_rates), statistics.median(floor_rates)
                row = {
                    "plugin": plugin,
                    "max_in_flight": window,
                    "rows": args.rows,
                    "cdc_changes_per_s": [round(x) for x in cdc_rates],
                    "floor_msgs_per_s": [round(x) for x in floor_rates],
                    "cdc_median": round(c),
                    "floor_median": round(f),
                    "ratio": round(c / f, 3),
                }
                results.append(row)
                print(
                    f"{plugin:9s} window {window:2d}: cdc {c:7.0f} changes/s  floor {f:7.0f} msgs/s"
                    f"  ratio {c / f:.2f}",
                    flush=True,
                )
    finally:
        broker.stop()
        cluster.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "postgres-cdc end to end (slot -> Danube ack -> slot advance) vs raw publish",
                "machine": machine(),
                "settings": {"broker": "BrokerProcess defaults", "transaction_rows": 100},
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
