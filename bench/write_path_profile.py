"""Where a column-store sink's write path spends its time: cProfile of the Delta Lake and ClickHouse writes.

    uv run python bench/write_path_profile.py [--batch 2000] [--rounds 5] [--top 12] [--stages]

Not a benchmark of record (``make bench`` does not run it) and not a test: it prints, per sink, the
functions with the most own time while the sink's write runs on ready batches (the payment rows of
``deltalake_bench.py`` / ``clickhouse_bench.py``, the same batch size), as bench/README.md's profile
summaries show them. Times are process CPU time (``time.process_time``), so a busy machine does not
inflate them. cProfile follows the event loop's thread only: the target's own write runs in a worker
thread (``asyncio.to_thread``), and its CPU shows up under what the loop does meanwhile, waiting in
``select.epoll.poll``.

``--stages`` prints instead, for Delta Lake, the per-batch split of the write path next to the direct
append (as ``deltalake_bench.py`` alternates them, fresh batches each time): medians in ms of the wall
time and of the CPU time of the thread running it (delta-rs's own threads not counted) for the column
build (``RowBuilder.build``, event loop thread), the commit (``DeltaTarget.append_new``: positions, then
``write_deltalake``, worker thread) and the whole write (CPU: the event loop thread's).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
from typing import Any

import clickhouse_bench
import clickhouse_connect
import deltalake_bench
from danube_connect_core.testing import make_config
from danube_sink_clickhouse.connector import ClickHouseSink
from danube_sink_deltalake.connector import DeltaLakeSink
from deltalake import DeltaTable, write_deltalake
from sink_calls import prepared_batch, write_prepared


async def profile(sink: Any, batches: list[Any], top: int) -> tuple[float, str]:
    """(rows per CPU second without the profiler, the top functions by own CPU time under it)."""
    half = len(batches) // 2
    start = time.process_time()
    for b in batches[:half]:
        await write_prepared(sink, b)
    plain = sum(len(b.records) for b in batches[:half]) / (time.process_time() - start)
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for b in batches[half:]:
        await write_prepared(sink, b)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return plain, out.getvalue()


async def delta(batch: int, rounds: int, top: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        n = batch * rounds * 2
        recs = deltalake_bench.records(n, "/default/profile")
        sink = DeltaLakeSink()
        config = make_config(
            "http://127.0.0.1:1", "bench", deltalake_bench.settings(tmp, recs[0].topic, batch, "t")
        )
        await sink.initialize(config)
        batches = [await prepared_batch(sink, recs[i : i + batch]) for i in range(0, n, batch)]
        await write_prepared(sink, batches.pop(0))  # warm: table opened, positions read
        rate, text = await profile(sink, batches, top)
        print(
            f"== Delta Lake write path, batch {batch}: {rate:,.0f} rows per CPU second"
            f" without the profiler\n{text}"
        )
        await sink.shutdown()


async def clickhouse(batch: int, rounds: int, top: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dsn = f"chdb://{tmp}/chdb"
        client = clickhouse_connect.get_client(dsn=dsn)
        client.command("CREATE DATABASE bench")
        clickhouse_bench.create(client, "t")
        n = batch * rounds * 2
        recs = clickhouse_bench.records(n, "/default/profile")
        sink = ClickHouseSink()
        settings = clickhouse_bench.settings(dsn, recs[0].topic, batch, "t")
        await sink.initialize(make_config("http://127.0.0.1:1", "bench", settings))
        batches = [await prepared_batch(sink, recs[i : i + batch]) for i in range(0, n, batch)]
        await write_prepared(sink, batches.pop(0))
        rate, text = await profile(sink, batches, top)
        print(
            f"== ClickHouse write path, batch {batch}: {rate:,.0f} rows per CPU second"
            f" without the profiler\n{text}"
        )
        await sink.shutdown()


async def delta_stages(batch: int, rounds: int) -> None:
    """Per-batch medians (wall, loop-thread CPU) of the sink's stages next to the direct append."""
    times: dict[str, list[float]] = {}

    def timed(name: str, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                times.setdefault(f"{name} wall", []).append(time.perf_counter() - wall)
                times.setdefault(f"{name} cpu", []).append(time.thread_time() - cpu)

        return call

    with tempfile.TemporaryDirectory() as tmp:
        for k in range(rounds):
            recs = deltalake_bench.records(batch * 10, "/default/stages")
            tables = deltalake_bench.direct_tables(len(recs), batch)
            uri = f"{tmp}/direct_{k}"
            DeltaTable.create(uri, deltalake_bench.SCHEMA)
            dt = DeltaTable(uri)
            sink = DeltaLakeSink()
            config = make_config(
                "http://127.0.0.1:1", "bench", deltalake_bench.settings(tmp, recs[0].topic, batch, f"s{k}")
            )
            await sink.initialize(config)
            mapping = sink.mappings[0]
            mapping.rows.build = timed("build (loop thread)", mapping.rows.build)
            mapping.target.append_new = timed("commit (worker thread)", mapping.target.append_new)
            batches = [await prepared_batch(sink, recs[i : i + batch]) for i in range(0, len(recs), batch)]
            direct_write = timed("direct write_deltalake", write_deltalake)
            for table, b in zip(tables, batches, strict=True):
                direct_write(dt, table, mode="append")
                wall, cpu = time.perf_counter(), time.thread_time()
                await write_prepared(sink, b)
                times.setdefault("sink write, whole wall", []).append(time.perf_counter() - wall)
                times.setdefault("sink write, whole cpu", []).append(time.thread_time() - cpu)
            await sink.shutdown()
    print(
        f"== Delta Lake write path stages, batch {batch}, {rounds} rounds of 10 batches (median ms per batch)"
    )
    for name, values in times.items():
        print(f"  {name:40s} {statistics.median(values) * 1000:7.2f}")
    print(f"  (load average {os.getloadavg()[0]:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument(
        "--rounds", type=int, default=5, help="batches profiled (as many more run unprofiled)"
    )
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--stages", action="store_true", help="Delta Lake's per-batch stage split only")
    args = parser.parse_args()
    if args.stages:
        asyncio.run(delta_stages(args.batch, args.rounds))
        return
    asyncio.run(delta(args.batch, args.rounds, args.top))
    asyncio.run(clickhouse(args.batch, args.rounds, args.top))


if __name__ == "__main__":
    main()
