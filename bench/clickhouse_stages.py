"""Where the ClickHouse sink's write time goes, per batch, in place (not a benchmark of record, not a test).

    uv run python bench/clickhouse_stages.py [--batch 500 --batch 2000] [--batches 20]

The payment rows of ``clickhouse_bench.py`` on chdb: for each batch the direct ``insert_arrow`` of a table
built beforehand (the write-path floor) alternates with the sink's ``write`` on a batch prepared as the
runtime prepares it, and the sink's stages are timed where they run (wall clock, medians per batch):
``RowBuilder.build_table`` on the event loop, ``TableWriter.write_table`` in the worker thread and the
``insert_arrow`` call inside it. bench/README.md's write-path section quotes a run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import clickhouse_bench
import clickhouse_connect
from danube_connect_core.testing import make_config
from danube_sink_clickhouse import rows, writer
from danube_sink_clickhouse.connector import ClickHouseSink
from sink_calls import prepared_batch, write_prepared


def timed(owner: Any, name: str, into: list[float]) -> None:
    """Replace ``owner.name`` with a wrapper appending each call's wall time to ``into``."""
    original: Callable[..., Any] = getattr(owner, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - start)

    setattr(owner, name, call)


async def stages(batch: int, batches: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        dsn = f"chdb://{tmp}/chdb"
        client = clickhouse_connect.get_client(dsn=dsn)
        client.command("CREATE DATABASE bench")
        recs = clickhouse_bench.records(batch * batches, "/default/stages")
        direct_rows = clickhouse_bench.direct_rows(client, recs, "direct")
        tables = [clickhouse_bench.table_of(direct_rows[i : i + batch]) for i in range(0, len(recs), batch)]
        clickhouse_bench.create(client, "sink")
        sink = ClickHouseSink()
        settings = clickhouse_bench.settings(dsn, recs[0].topic, batch, "sink")
        await sink.initialize(make_config("http://127.0.0.1:1", "bench", settings))
        prepared = [await prepared_batch(sink, recs[i : i + batch]) for i in range(0, len(recs), batch)]
        times: dict[str, list[float]] = {k: [] for k in ("build_table", "write_table", "insert_arrow")}
        timed(rows.RowBuilder, "build_table", times["build_table"])
        timed(writer.TableWriter, "write_table", times["write_table"])
        timed(writer._ArrowBatch, "insert", times["insert_arrow"])
        direct: list[float] = []
        sink_write: list[float] = []
        for table, b in zip(tables, prepared, strict=True):
            start = time.perf_counter()
            client.insert_arrow("direct", table, database="bench")
            direct.append(time.perf_counter() - start)
            start = time.perf_counter()
            await write_prepared(sink, b)
            sink_write.append(time.perf_counter() - start)
        await sink.shutdown()
    ms = {name: statistics.median(v) * 1e3 for name, v in times.items()}
    ms["direct insert_arrow (floor)"] = statistics.median(direct) * 1e3
    ms["sink write"] = statistics.median(sink_write) * 1e3
    ms["first sink write (reads the positions)"] = sink_write[0] * 1e3
    return ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default: 500 and 2000)")
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    for batch in args.batch or [500, 2000]:
        ms = asyncio.run(stages(batch, args.batches))
        print(f"batch {batch}, median ms per batch:")
        for name, value in ms.items():
            print(f"  {name:40s} {value:7.2f}")


if __name__ == "__main__":
    main()
