"""End-to-end load test: webhook source -> embedded broker -> SurrealDB sink, each a real process.

    uv run python bench/e2e_bench.py [--rates 50,100,200,400,800,1600] [--step-seconds 12] [--soak] [--quick]

The Stripe-style payments pipeline exactly as ``example_e2e`` configures it (webhook with api_key auth,
the payment JSON Schema, 4 partitions, reliable dispatch; SurrealDB sink with batch 50, flush 1 s, Shared
subscription), on the broker's defaults (namespace ``stripe``, window of 10 unacked per partition,
fsync ``interval``) and an embedded ``surrealkv`` store: three processes started the way a user starts
them (``danube-embedded-broker``, ``danube-connect run webhook``, ``danube-connect run surrealdb``).

Load: bench/e2e_load.py, a separate process per step (aiohttp client on its own event loop), offers
payment webhooks open-loop at a fixed rate for ``--step-seconds``; rates increase until a step is not
sustained, then ``--refine-steps`` steps (2) bisect the gap between the highest sustained rate and the
lowest failed one, then an overload step offers 2x the highest sustained rate. Between steps the bench
waits until the sink stored everything that was accepted, so every step starts with an empty pipeline.

What is measured, per step (all derived after the run from what SurrealDB holds; the sink is stopped
first because an embedded store belongs to one process):

- offered/s: requests the generator really started per second (it reports when it ran late);
- accepted/s: 2xx answers per second of the step; 503s and whether each carried Retry-After;
- stored: accepted events found in SurrealDB, matched by ``(bench_step, bench_seq)`` in the payload;
  lost = accepted but not stored (must be 0: invariant 1); duplicates = rows beyond one per event;
- stored/s: stored events / (time from the step's first scheduled send to its last row's store time);
- latency "2xx": scheduled send time -> the webhook's 2xx answer (the broker holds the event);
- latency "end to end": scheduled send time (wall clock, written into the payload) -> the row's
  ``stored_at``, which SurrealDB sets with ``time::now()`` when the sink's batch INSERT evaluates the row
  (a field default defined on the table before the sink starts; the commit follows in the same
  statement, before the sink acks). Same host, same wall clock. Both latencies run from the
  *scheduled* send time, so generator lateness and client-side queueing count (open loop);
- peak RSS (VmRSS sampled every 0.25 s from /proc) of the broker, the webhook and the sink during the
  step and its drain; the generator reports its own VmHWM; plus each process's VmHWM over the run.

A step is *sustained* when every request was answered 2xx, nothing accepted was lost, and the last
event was stored at most ``KEEP_UP_S`` seconds after the step's scheduled end (the sink kept up; its
flush interval is 1 s). The sustained rate is the highest such offered rate.

Results: bench/results/e2e.json. Not a test: nothing is asserted; the run fails only when a process dies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# grpc logs a line per fork (the generator is a subprocess); nothing else of interest at INFO
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from danube_connect_core.testing import ConnectorProcess, http_get, process_env
from danube_connect_core.testing.waits import logged_int, start_ready
from danube_embedded_broker.testing import BrokerProcess
from danube_sink_surrealdb.testing import surrealkv_config
from danube_source_webhook.testing import loopback_config
from machine_info import describe, load_average, process_cpu_s
from result_files import result_path
from surrealdb import AsyncSurreal
from surrealdb_bench import raw_consume

ROOT = Path(__file__).resolve().parent.parent
#: The pipeline as the example configures it (run on loopback ports and an embedded surrealkv store).
WEBHOOK_EXAMPLE = ROOT / "example_e2e" / "webhook-connector.toml"
SINK_EXAMPLE = ROOT / "example_e2e" / "surrealdb-sink-connector.toml"
#: The key clients send as x-api-key (the webhook reads it from WEBHOOK_API_KEY).
API_KEY = "bench-api-key"

LOAD_SCRIPT = Path(__file__).resolve().parent / "e2e_load.py"
RAW_E2E = Path(__file__).resolve().parent / "raw_e2e.py"
FLOOR_TOPIC = "/default/e2e-pipeline-floor"
TABLE = "stripe_payments"
#: A step keeps up when its last event is stored within this many seconds after the step's end.
KEEP_UP_S = 2.0
#: Waiting for the sink to store everything accepted: give up after this long without progress.
DRAIN_STALL_S = 60.0
DRAIN_MAX_S = 600.0
RSS_SAMPLE_S = 0.25


def proc_status_kib(pid: int, key: str) -> int | None:
    """``VmRSS``/``VmHWM`` of a process in KiB from /proc/<pid>/status (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


@dataclass
class RssSampler:
    """Peak VmRSS per named process since the last :meth:`reset`, sampled in the background."""

    pids: dict[str, int]
    peaks_kib: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.peaks_kib = {}

    def sample(self) -> None:
        for name, pid in self.pids.items():
            rss = proc_status_kib(pid, "VmRSS")
            if rss is not None:
                self.peaks_kib[name] = max(self.peaks_kib.get(name, 0), rss)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(RSS_SAMPLE_S)


@dataclass
class Pipeline:
    broker: BrokerProcess
    webhook: ConnectorProcess
    sink: ConnectorProcess
    webhook_url: str
    query_port: int

    def pids(self) -> dict[str, int]:
        assert self.broker.pid is not None and self.webhook.proc and self.sink.proc
        return {"broker": self.broker.pid, "webhook": self.webhook.proc.pid, "sink": self.sink.proc.pid}

    def check_alive(self) -> None:
        """Raises with the log tail when a process of the pipeline has exited."""
        if not self.broker.running:
            raise RuntimeError(f"the broker exited:\n{self.broker.log_tail()}")
        for name, proc in (("webhook", self.webhook), ("sink", self.sink)):
            assert proc.proc is not None
            if proc.proc.poll() is not None:
                raise RuntimeError(f"the {name} exited ({proc.proc.returncode}):\n{proc.log_tail()}")


async def prepare_store(store: Path) -> None:
    """Define the table with a ``stored_at`` default before the sink opens the store (then close it)."""
    db: Any = AsyncSurreal(f"surrealkv://{store}")
    await db.connect()
    try:
        await db.use("default", "default")
        await db.query(
            f"DEFINE TABLE {TABLE} SCHEMALESS; DEFINE FIELD stored_at ON {TABLE} DEFAULT time::now();"
        )
    finally:
        await db.close()


async def start_pipeline(tmp: Path) -> Pipeline:
    store = tmp / "surreal"
    await prepare_store(store)
    broker = BrokerProcess(tmp / "broker", args=["--namespace", "stripe", "--log-level", "WARNING"])
    await asyncio.to_thread(broker.start)
    env = {**process_env(broker.url), "WEBHOOK_API_KEY": API_KEY}
    webhook = ConnectorProcess("webhook", loopback_config(WEBHOOK_EXAMPLE, tmp / "webhook"), env=env).start()
    web_port = logged_int(webhook, "webhook_port")
    await start_ready(webhook)
    sink_config = tmp / "surrealdb-sink-connector.toml"
    sink_config.write_text(surrealkv_config(SINK_EXAMPLE, store, query_api=True))
    sink = ConnectorProcess("surrealdb", sink_config, env=process_env(broker.url)).start()
    await start_ready(sink)
    query_port = logged_int(sink, "query_api_port")
    path = tomllib.loads(WEBHOOK_EXAMPLE.read_text())["webhook"]["endpoints"][0]["path"]
    url = f"http://127.0.0.1:{web_port}{path}"
    return Pipeline(broker, webhook, sink, url, query_port)


async def stored_total(p: Pipeline) -> int:
    status, body = await asyncio.to_thread(http_get, p.query_port, f"/tables/{TABLE}/count")
    if status != 200:
        raise RuntimeError(f"query API answered {status}: {body}\n{p.sink.log_tail()}")
    return int(json.loads(body)["total"])


async def wait_stored(p: Pipeline, expected: int) -> tuple[int, int | None]:
    """Poll the sink's row count until it reaches ``expected``; returns (count, wall ns when reached).

    Gives up (returning None) when the count has not moved for DRAIN_STALL_S or after DRAIN_MAX_S.
    """
    started = last_move = time.monotonic()
    last = -1
    while True:
        p.check_alive()
        count = await stored_total(p)
        if count >= expected:
            return count, time.time_ns()
        now = time.monotonic()
        if count != last:
            last, last_move = count, now
        if now - last_move > DRAIN_STALL_S or now - started > DRAIN_MAX_S:
            return count, None
        await asyncio.sleep(0.25)


async def offer(p: Pipeline, tmp: Path, rate: float, seconds: float, step: int) -> dict[str, Any]:
    """Run the generator process for one step and return its report."""
    out = tmp / f"step-{step}.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(LOAD_SCRIPT),
        "--url",
        p.webhook_url,
        "--api-key",
        API_KEY,
        "--rate",
        str(rate),
        "--duration",
        str(seconds),
        "--step",
        str(step),
        "--out",
        str(out),
    )
    try:
        rc = await asyncio.wait_for(proc.wait(), seconds + 300)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"the load generator of step {step} did not finish") from None
    if rc != 0:
        raise RuntimeError(f"the load generator of step {step} exited {rc}")
    report: dict[str, Any] = json.loads(out.read_text())
    return report


@dataclass
class StepRun:
    kind: str
    report: dict[str, Any]
    rss_peaks_kib: dict[str, int]
    drained: bool
    live_drain_s: float | None
    #: CPU seconds each process used during the step and its drain (the generator: its own report).
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def live_sustained(self) -> bool:
        """The judgement used to decide whether to go on (the final one is computed from the store)."""
        r = self.report
        ok = sum(v for k, v in r["statuses"].items() if k.startswith("2")) == r["requests"]
        return ok and self.drained and self.live_drain_s is not None and self.live_drain_s <= KEEP_UP_S


async def run_step(
    p: Pipeline, sampler: RssSampler, tmp: Path, rate: float, seconds: float, step: int, kind: str
) -> StepRun:
    before = await stored_total(p)
    sampler.reset()
    cpu_before = {name: process_cpu_s(pid) for name, pid in p.pids().items()}
    report = await offer(p, tmp, rate, seconds, step)
    accepted = len(report["accepted_seqs"])
    count, reached_ns = await wait_stored(p, before + accepted)
    sampler.sample()
    cpu = {name: process_cpu_s(pid) - cpu_before[name] for name, pid in p.pids().items()}
    cpu["load_generator"] = report.get("cpu_s", 0.0)
    live_drain = (reached_ns - report["end_wall_ns"]) / 1e9 if reached_ns is not None else None
    run = StepRun(kind, report, dict(sampler.peaks_kib), reached_ns is not None, live_drain, cpu)
    statuses = report["statuses"]
    drain = f"{live_drain:.1f} s" if live_drain is not None else f"NOT drained ({count - before} stored)"
    print(
        f"step {step} ({kind}) {rate:7.0f}/s offered {report['offered_per_s']:7.1f}/s  {statuses}"
        f"  errors {report['client_errors']}  drained after {drain}"
        f"  -> {'sustained' if run.live_sustained else 'not sustained'}",
        flush=True,
    )
    return run


async def read_rows(store: Path) -> list[dict[str, Any]]:
    """Every stored row's step, sequence number, scheduled send time and store time (sink stopped)."""
    db: Any = AsyncSurreal(f"surrealkv://{store}")
    await db.connect()
    try:
        await db.use("default", "default")
        rows: list[dict[str, Any]] = await db.query(
            f"SELECT bench_step, bench_seq, timestamp, time::nano(stored_at) AS stored_ns FROM {TABLE}"
        )
    finally:
        await db.close()
    return rows


def percentiles(values: list[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p95/p99 and max (None for an empty list)."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)], 1)

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": round(ordered[-1], 1)}


def analyse(run: StepRun, stored_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One step's numbers from the generator's report and the rows SurrealDB holds for that step."""
    r = run.report
    accepted = set(r["accepted_seqs"])
    stored_ns: dict[int, int] = {}
    duplicates = 0
    for row in stored_rows:
        seq = int(row["bench_seq"])
        if seq in stored_ns:
            duplicates += 1
            stored_ns[seq] = min(stored_ns[seq], int(row["stored_ns"]))
        else:
            stored_ns[seq] = int(row["stored_ns"])
    sent_ns = {int(row["bench_seq"]): int(row["timestamp"]) * 1000 for row in stored_rows}
    lost = sorted(accepted - stored_ns.keys())
    stored_acked = [s for s in accepted if s in stored_ns]
    e2e_ms = [(stored_ns[s] - sent_ns[s]) / 1e6 for s in stored_acked]
    last_stored = max((stored_ns[s] for s in stored_acked), default=None)
    stored_per_s = drain_s = None
    if last_stored is not None:
        stored_per_s = len(stored_acked) / ((last_stored - r["start_wall_ns"]) / 1e9)
        drain_s = (last_stored - r["end_wall_ns"]) / 1e9
    statuses = {int(k): v for k, v in r["statuses"].items()}
    n_2xx = sum(v for k, v in statuses.items() if 200 <= k < 300)
    n_503 = statuses.get(503, 0)
    errors = sum(r["client_errors"].values())
    sustained = (
        n_2xx == r["requests"] and not lost and drain_s is not None and drain_s <= KEEP_UP_S and run.drained
    )
    peaks = {name: round(kib / 1024, 1) for name, kib in run.rss_peaks_kib.items()}
    if r.get("peak_rss_kib"):
        peaks["load_generator"] = round(r["peak_rss_kib"] / 1024, 1)
    return {
        "step": r["step"],
        "kind": run.kind,
        "cpu_us_per_accepted": {k: v * 1e6 / n_2xx for k, v in run.cpu_s.items()} if n_2xx else None,
        "rate": r["rate"],
        "duration_s": r["duration_s"],
        "requests": r["requests"],
        "offered_per_s": r["offered_per_s"],
        "generator_max_late_ms": r["generator_max_late_ms"],
        "accepted": n_2xx,
        "accepted_per_s": n_2xx / r["duration_s"],
        "statuses": r["statuses"],
        "rejected_503": n_503,
        "rejected_503_share": n_503 / r["requests"],
        "retry_after_share_of_503": (r["retry_after_503"] / n_503) if n_503 else None,
        "client_errors": r["client_errors"],
        "client_error_count": errors,
        "stored": len(stored_acked),
        "stored_not_acknowledged": len(stored_ns.keys() - accepted),
        "lost": len(lost),
        "lost_examples": lost[:10],
        "duplicates": duplicates,
        "stored_per_s": stored_per_s,
        "drain_s": drain_s,
        "drained_in_time": run.drained,
        "latency_2xx_ms": percentiles(r["latencies_2xx_ms"]),
        "latency_e2e_ms": percentiles(e2e_ms),
        "peak_rss_mib": peaks,
        "sustained": sustained,
        # the judgement made while running (from the sink's row count), which steered the ramp
        "sustained_live": run.live_sustained,
    }


@dataclass
class FloorStep:
    rate: float
    report: dict[str, Any]
    drain_s: float | None
    #: CPU seconds each process used during the step and its drain (the producer: its own report).
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def sustained(self) -> bool:
        """Every message acknowledged, every one stored, the last within KEEP_UP_S of the step's end."""
        r = self.report
        complete = r["acked"] == r["requests"] and r["errors"] == 0
        return complete and self.drain_s is not None and self.drain_s <= KEEP_UP_S

    def as_json(self) -> dict[str, Any]:
        acked = self.report["acked"]
        per = {k: v * 1e6 / acked for k, v in self.cpu_s.items()} if acked else None
        return {**self.report, "drain_s": self.drain_s, "sustained": self.sustained, "cpu_us_per_acked": per}


async def run_floor(
    broker: BrokerProcess, tmp: Path, rates: list[float], seconds: float, refine_steps: int
) -> dict[str, Any]:
    """P4's floor: the raw-stub pipeline (bench/raw_e2e.py) at the same offered rates, same ramp rules."""
    broker_url = broker.url
    assert broker.pid is not None
    status = tmp / "floor-status.json"
    consumer = await asyncio.create_subprocess_exec(
        sys.executable, str(RAW_E2E), "consume", "--broker", broker_url, "--topic", FLOOR_TOPIC,
        "--store", str(tmp / "floor-surreal"), "--batch", "50", "--flush-ms", "1000", "--status", str(status),
    )  # fmt: skip

    def stored() -> tuple[int, int]:
        doc = json.loads(status.read_text())
        return int(doc["stored"]), int(doc["wall_ns"])

    async def step(rate: float, k: int, duration: float) -> FloorStep:
        before = stored()[0]
        pids = {"broker": broker.pid, "consumer": consumer.pid}
        cpu_before = {name: process_cpu_s(pid) for name, pid in pids.items()}
        out = tmp / f"floor-step-{k}.json"
        producer = await asyncio.create_subprocess_exec(
            sys.executable, str(RAW_E2E), "produce", "--broker", broker_url, "--topic", FLOOR_TOPIC,
            "--rate", str(rate), "--duration", str(duration), "--step", str(k), "--out", str(out),
        )  # fmt: skip
        if await asyncio.wait_for(producer.wait(), duration + 300) != 0:
            raise RuntimeError(f"the floor's producer of step {k} failed")
        report: dict[str, Any] = json.loads(out.read_text())
        expected = before + report["acked"]
        started = last_move = time.monotonic()
        last, drain = -1, None
        while True:
            count, wall_ns = stored()
            if count >= expected:
                drain = (wall_ns - report["end_wall_ns"]) / 1e9
                break
            now = time.monotonic()
            if count != last:
                last, last_move = count, now
            if (
                now - last_move > DRAIN_STALL_S
                or now - started > DRAIN_MAX_S
                or consumer.returncode is not None
            ):
                break
            await asyncio.sleep(0.25)
        cpu = {name: process_cpu_s(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["producer"] = report.get("cpu_s", 0.0)
        result = FloorStep(rate, report, drain, cpu)
        print(
            f"floor step {k} {rate:7.0f}/s offered {report['offered_per_s']:7.1f}/s acked {report['acked']}"
            f"/{report['requests']} drained after {drain if drain is None else round(drain, 1)} s"
            f" -> {'sustained' if result.sustained else 'not sustained'}",
            flush=True,
        )
        return result

    try:
        async with asyncio.timeout(120):
            while not status.exists():  # noqa: ASYNC110 (a file another process writes)
                await asyncio.sleep(0.1)
        await step(20, 0, 2)  # warm-up, as the pipeline's
        steps: list[FloorStep] = []
        for k, rate in enumerate(rates, start=1):
            steps.append(await step(rate, k, seconds))
            if not steps[-1].sustained:
                break
        for _ in range(refine_steps):
            middle = halfway(
                [s.rate for s in steps if s.sustained], [s.rate for s in steps if not s.sustained]
            )
            if middle is None:
                break
            steps.append(await step(middle, len(steps) + 1, seconds))
    finally:
        consumer.terminate()
        await consumer.wait()
    sustained = [s.rate for s in steps if s.sustained]
    return {
        "steps": [s.as_json() for s in steps],
        "sustained_rate_per_s": max(sustained) if sustained else None,
        "pipeline": "raw-stub producer (one process per step, open loop, 4 partitions, reliable) -> same "
        "broker -> raw-stub consumer (batches of 50 or 1 s, one INSERT IGNORE per batch into its own "
        "surrealkv store, then acks)",
    }


def halfway(sustained: list[float], failed: list[float]) -> float | None:
    """The next refinement rate: halfway between the highest sustained rate and the lowest failed one
    (None when there is no such gap left). Called after every refinement step, it bisects the limit."""
    if not sustained or not failed:
        return None
    low, high = max(sustained), min(failed)
    middle = round((low + high) / 2)
    return float(middle) if low < middle < high else None


async def run_bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    load_start = load_average()
    p = await start_pipeline(tmp)
    sampler = RssSampler(p.pids())
    sampler_task = asyncio.create_task(sampler.run())
    runs: list[StepRun] = []
    try:
        # warm-up (producers, schema, connections): checked for loss like the rest, not reported as a step
        warm = await run_step(p, sampler, tmp, 20, 2, 0, "warm-up")
        step = 0
        for rate in args.rates:
            step += 1
            runs.append(await run_step(p, sampler, tmp, rate, args.step_seconds, step, "ramp"))
            if not runs[-1].live_sustained:
                break
        for _ in range(args.refine_steps):
            ok = [r.report["rate"] for r in runs if r.live_sustained]
            middle = halfway(ok, [r.report["rate"] for r in runs if not r.live_sustained])
            if middle is None:
                break
            step += 1
            runs.append(await run_step(p, sampler, tmp, middle, args.step_seconds, step, "refine"))
        live_sustained = [r.report["rate"] for r in runs if r.live_sustained]
        base = max(live_sustained) if live_sustained else args.rates[0]
        step += 1
        runs.append(await run_step(p, sampler, tmp, 2 * base, args.step_seconds, step, "overload"))
        hwm = {name: proc_status_kib(pid, "VmHWM") for name, pid in p.pids().items()}
        # The floor for the sink side, on the same broker with the same settings (window of 10 unacked
        # per partition), while the pipeline idles: a bare consumer draining a 4-partition backlog.
        consumer_floor = await raw_consume(p.broker.url, "/default/e2e-consumer-floor", args.floor_messages)
        print(f"context: bare consumer (receive + ack), same broker: {consumer_floor:.0f} msg/s", flush=True)
        # P4's floor: the same pipeline from raw stubs at the same offered rates, on the same broker
        floor = await run_floor(p.broker, tmp, args.rates, args.step_seconds, args.refine_steps)
    finally:
        sampler_task.cancel()
        exit_codes = await stop_pipeline(p)
    rows = await read_rows(tmp / "surreal")
    by_step: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_step.setdefault(int(row["bench_step"]), []).append(row)
    steps = [analyse(run, by_step.get(run.report["step"], [])) for run in runs]
    warm_up = analyse(warm, by_step.get(0, []))
    ramp = [s for s in steps if s["kind"] != "overload"]
    sustained = [s for s in ramp if s["sustained"]]
    best = max(sustained, key=lambda s: s["rate"]) if sustained else None
    overload = steps[-1]
    return {
        "benchmark": "e2e",
        "settings": {
            "rates": args.rates,
            "step_seconds": args.step_seconds,
            "soak": args.soak,
            "quick": args.quick,
            "keep_up_s": KEEP_UP_S,
            "pipeline": "example_e2e configs: webhook api_key + JSON Schema, 4 partitions, reliable; "
            "SurrealDB sink batch 50, flush 1000 ms, Shared; broker defaults (10 unacked/partition, "
            "fsync interval); surrealkv store",
        },
        "machine": {
            "load_average_at_start": load_start,
            "load_average_at_end": load_average(),
        },
        "warm_up": warm_up,
        "steps": steps,
        "sustained_rate_per_s": best["rate"] if best else None,
        "consumer_floor_per_s": consumer_floor,
        "consumer_floor_messages": args.floor_messages,
        "raw_pipeline": floor,
        "raw_pipeline_sustained_per_s": floor["sustained_rate_per_s"],
        "sustained_step": best["step"] if best else None,
        "overload": {
            "rate": overload["rate"],
            "base_rate": base,
            "rss_vs_sustained": rss_ratio(overload, best),
            "lost": overload["lost"],
        },
        "total_rows": len(rows),
        "total_lost": sum(s["lost"] for s in [*steps, warm_up]),
        "total_duplicates": sum(s["duplicates"] for s in [*steps, warm_up]),
        "process_peak_rss_mib": {k: round(v / 1024, 1) for k, v in hwm.items() if v is not None},
        "exit_codes": exit_codes,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def rss_ratio(overload: dict[str, Any], best: dict[str, Any] | None) -> dict[str, float] | None:
    """Peak RSS in the overload step over the highest sustained step's, per process."""
    if best is None:
        return None
    o, b = overload["peak_rss_mib"], best["peak_rss_mib"]
    return {k: round(o[k] / b[k], 2) for k in o if b.get(k)}


async def stop_pipeline(p: Pipeline) -> dict[str, int | None]:
    """SIGTERM the connectors (they drain: invariant 6), then the broker; returns the exit codes."""
    codes: dict[str, int | None] = {}
    for name, proc in (("webhook", p.webhook), ("sink", p.sink)):
        assert proc.proc is not None
        if proc.proc.poll() is None:
            proc.signal(signal.SIGTERM)
        try:
            codes[name] = await asyncio.to_thread(proc.wait, 60)
        except Exception:
            proc.kill()
            codes[name] = None
    codes["broker"] = await asyncio.to_thread(p.broker.stop)
    return codes


def print_table(result: dict[str, Any]) -> None:
    print()
    print("| step | offered/s | accepted/s | 503 | stored/s | lost | 2xx p50/p99 ms | e2e p50/p95/p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in result["steps"]:
        a, e = s["latency_2xx_ms"], s["latency_e2e_ms"]
        print(
            f"| {s['step']} {s['kind']} {s['rate']:.0f}/s | {s['offered_per_s']:.0f} | "
            f"{s['accepted_per_s']:.0f} | {s['rejected_503']} | {fmt(s['stored_per_s'])} | {s['lost']} | "
            f"{fmt(a['p50'])}/{fmt(a['p99'])} | {fmt(e['p50'])}/{fmt(e['p95'])}/{fmt(e['p99'])} |"
        )
    print(f"\nsustained with zero loss: {result['sustained_rate_per_s']} ev/s")
    for side, steps_, key in (
        ("pipeline", result["steps"], "cpu_us_per_accepted"),
        ("raw-stub floor", result["raw_pipeline"]["steps"], "cpu_us_per_acked"),
    ):
        for s in steps_:
            if s.get(key):
                per = ", ".join(f"{k} {v:.0f}" for k, v in s[key].items())
                print(f"CPU us per event, {side} {s['rate']:.0f}/s: {per} (sum {sum(s[key].values()):.0f})")
    print(f"peak RSS (MiB): {result['process_peak_rss_mib']}; exit codes {result['exit_codes']}")


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[50.0, 100.0, 200.0, 400.0, 800.0, 1600.0],
        help="offered rates of the ramp, events/s, comma-separated (stops at the first not sustained)",
    )
    parser.add_argument("--step-seconds", type=float, default=12.0)
    parser.add_argument(
        "--refine-steps", type=int, default=2, help="steps bisecting the limit after the first failed one"
    )
    parser.add_argument("--soak", action="store_true", help="long steps (120 s) unless --step-seconds given")
    parser.add_argument("--floor-messages", type=int, default=3000, help="backlog of the consumer floor")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50,100/s, 3 s steps")
    args = parser.parse_args()
    if args.quick:
        args.rates, args.step_seconds, args.floor_messages = [50.0, 100.0], 3.0, 300
    elif args.soak and args.step_seconds == parser.get_default("step_seconds"):
        args.step_seconds = 120.0
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp:
        result = asyncio.run(run_bench(args, Path(tmp)))
    result["machine"] = {**describe(result["machine"]["load_average_at_start"])}
    out = result_path("e2e.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
