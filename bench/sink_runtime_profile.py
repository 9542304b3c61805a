"""Same-run cost of the sink runtime end to end vs the raw-stub floor, and a py-spy target (not a test).

Delta Lake payment rows at one batch size (default 500), on one broker process (``--max-unacked 1000``):
SinkRuntime with the Delta Lake sink vs ``raw_stub.drain`` appending each batch with ``write_deltalake``
(both as in ``deltalake_bench.py``), alternating ``--rounds`` times, each draining a backlog filled before
its clock starts; both clocks end at the last ack (``raw_stub.runtime_settled``). Prints rows/s and this
process's CPU time per message while draining (all threads: the Delta writes run in worker threads), and
the ratios of the medians. CPU per message is the number that
survives a loaded machine; rows/s is only comparable within one quiet run.
``--only runtime`` runs just the runtime rounds, for a profile of the sink path:
``py-spy record -r 200 -f raw -o out.txt -- python bench/sink_runtime_profile.py --only runtime``.
Usage: uv run python bench/sink_runtime_profile.py [--messages N] [--batch B] [--rounds R] [--only runtime]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import deltalake_bench as bench
import raw_stub
from danube_connect_core.sink_runtime import SinkRuntime
from danube_connect_core.testing import make_config
from danube_embedded_broker.testing import BrokerProcess
from deltalake import DeltaTable, write_deltalake


async def raw_round(url: str, root: str, topic: str, n: int, batch: int) -> tuple[float, float]:
    await bench.fill(url, topic, "floor", n)
    uri = f"{root}/{topic.rsplit('/', 1)[1]}"
    DeltaTable.create(uri, bench.SCHEMA)
    dt = DeltaTable(uri)

    async def write(messages: Any) -> None:
        await asyncio.to_thread(write_deltalake, dt, bench.floor_table(messages), mode="append")

    cpu = time.process_time()
    rate = await raw_stub.drain(
        url, topic, "floor", 4, n, batch, write, idle_s=0.02, max_age_s=1.0, window=1000
    )
    return rate, (time.process_time() - cpu) / n


async def runtime_round(url: str, root: str, topic: str, n: int, batch: int) -> tuple[float, float]:
    await bench.fill(url, topic, "bench", n)
    processing = {"metrics_port": 0, "batch_size": batch, "max_unacked_messages": 1000, "batch_idle_ms": 20}
    table = topic.rsplit("/", 1)[1]
    config = make_config(
        url, "bench-deltalake", bench.settings(root, topic, batch, table), processing=processing
    )
    sink = bench.CountingSink(n)
    runtime = SinkRuntime(sink, config)
    stop = asyncio.Event()
    cpu = time.process_time()
    start = time.perf_counter()
    task = asyncio.create_task(runtime.run(stop))
    await asyncio.wait_for(sink.done.wait(), 900)
    written = time.perf_counter() - start
    await raw_stub.runtime_settled(runtime, topic)  # the clock ends at the last ack, as the floor's
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    print(f"  (the acks still in flight at the last write took {(elapsed - written) * 1000:.0f} ms)")
    stop.set()
    await task
    return n / elapsed, cpu / n


async def main(n: int, batch: int, rounds: int, only: str | None) -> None:
    load = os.getloadavg()[0]
    raws: list[tuple[float, float]] = []
    rts: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = BrokerProcess(Path(tmp) / "broker", args=["--max-unacked", "1000"])
        url = broker.start()
        try:
            # warm-up outside the clocks (imports, first Delta writes): round 0 is not the floor's alone
            await asyncio.to_thread(bench.direct, f"{tmp}/lake", 1000, batch, "warm_up")
            for k in range(rounds):
                line = f"round {k}:"
                if only != "runtime":
                    raws.append(await raw_round(url, f"{tmp}/lake", f"/default/fl{k}", n, batch))
                    line += f" raw-stub {raws[-1][0]:6.0f} rows/s {raws[-1][1] * 1e6:5.0f} us CPU/msg,"
                rts.append(await runtime_round(url, f"{tmp}/lake", f"/default/rt{k}", n, batch))
                print(f"{line} runtime {rts[-1][0]:6.0f} rows/s {rts[-1][1] * 1e6:5.0f} us CPU/msg")
        finally:
            broker.stop()
    if raws:
        rate = statistics.median(r for r, _ in rts) / statistics.median(r for r, _ in raws)
        cpu = statistics.median(c for _, c in rts) / statistics.median(c for _, c in raws)
        print(f"batch {batch}: runtime / raw-stub: rows/s {rate:.2f}, CPU per message {cpu:.2f}")
    print(f"(load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["runtime"])
    a = parser.parse_args()
    asyncio.run(main(a.messages, a.batch, a.rounds, a.only))
