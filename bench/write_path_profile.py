"""Where a column-store sink's write path spends its time: cProfile of the Delta Lake and ClickHouse writes.

    uv run python bench/write_path_profile.py [--batch 2000] [--rounds 5] [--top 12]

Not a benchmark of record (``make bench`` does not run it) and not a test: it prints, per sink, the
functions with the most own time while the sink's write runs on ready batches (the payment rows of
``deltalake_bench.py`` / ``clickhouse_bench.py``, the same batch size), as bench/README.md's profile
summaries show them. Times are process CPU time (``time.process_time``), so a busy machine does not
inflate them. cProfile follows the event loop's thread only: the target's own write runs in a worker
thread (``asyncio.to_thread``), and its CPU shows up under what the loop does meanwhile, waiting in
``select.epoll.poll``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import tempfile
import time
from typing import Any

import clickhouse_bench
import clickhouse_connect
import deltalake_bench
from danube_connect_core.testing import make_config
from danube_sink_clickhouse.connector import ClickHouseSink
from danube_sink_deltalake.connector import DeltaLakeSink
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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument(
        "--rounds", type=int, default=5, help="batches profiled (as many more run unprofiled)"
    )
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    asyncio.run(delta(args.batch, args.rounds, args.top))
    asyncio.run(clickhouse(args.batch, args.rounds, args.top))


if __name__ == "__main__":
    main()
