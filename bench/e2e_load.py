"""Open-loop load generator for bench/e2e_bench.py: one step at one fixed rate, in its own process.

    python bench/e2e_load.py --url URL --api-key KEY --rate 200 --duration 12 --step 3 --out step.json

Open loop: request ``i`` is due at ``start + i / rate`` whatever happened to the requests before it
(a slow server does not slow the offered load down, unlike a fixed pool of clients waiting for answers).
Every due request is started at once on its own task; the connection pool is large (1,024) so the
client is not the queue. Each payload carries its step, its sequence number and its *scheduled* send
time (``timestamp``, microseconds since the epoch, wall clock): latencies are measured from the
scheduled time, so a late client or a queue in front of the server counts against the latency rather
than being hidden (no coordinated omission).

Writes one JSON file: counts per HTTP status, 503s that carried Retry-After, client-side errors, the
sequence numbers answered 2xx, the 2xx latencies (ms, send -> answer), how late the generator itself was,
and its own peak RSS. Runs on uvloop where available. Asserts nothing; exits 0 unless it cannot run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

EVENTS = ("payment.succeeded", "payment.failed", "payment.refunded", "payment.canceled")
#: Connections the client may open; far above what the webhook accepts at once (256 publishes), so
#: the server's own limit, not the client's pool, decides what happens under overload.
CONNECTIONS = 1024
#: A request still unanswered after this long counts as a client-side error (timeout).
REQUEST_TIMEOUT_S = 60.0


def peak_rss_kib() -> int | None:
    """This process's peak resident set size (VmHWM) in KiB, from /proc (Linux only)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


async def run_step(url: str, api_key: str, rate: float, duration: float, step: int) -> dict[str, Any]:
    total = max(1, round(rate * duration))
    statuses: dict[int, int] = {}
    retry_after_503 = 0
    errors: dict[str, int] = {}
    accepted: list[int] = []
    latencies_ms: list[float] = []
    headers = {"Content-Type": "application/json", "x-api-key": api_key}
    loop = asyncio.get_running_loop()

    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # The wall clock and the loop's monotonic clock read together: scheduled times are monotonic,
        # the payload carries their wall-clock equivalent (SurrealDB stamps rows with the wall clock).
        start = loop.time() + 0.2
        wall_at_start_ns = time.time_ns() + round((start - loop.time()) * 1e9)

        async def one(seq: int, due: float) -> None:
            nonlocal retry_after_503
            sent_ns = wall_at_start_ns + round((due - start) * 1e9)
            body = json.dumps(
                {
                    "event": EVENTS[seq % 4],
                    "amount": seq,
                    "currency": "EUR",
                    "timestamp": sent_ns // 1000,
                    "bench_step": step,
                    "bench_seq": seq,
                }
            )
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
                    if status == 503 and resp.headers.get("Retry-After"):
                        retry_after_503 += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            statuses[status] = statuses.get(status, 0) + 1
            if 200 <= status < 300:
                accepted.append(seq)
                latencies_ms.append((loop.time() - due) * 1000)

        tasks: set[asyncio.Task[None]] = set()
        max_late_s = 0.0
        next_seq = 0
        while next_seq < total:
            now = loop.time()
            # start everything that is due (several per wake-up at high rates)
            while next_seq < total and start + next_seq / rate <= now:
                due = start + next_seq / rate
                max_late_s = max(max_late_s, now - due)
                task = asyncio.create_task(one(next_seq, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                next_seq += 1
            if next_seq < total:
                await asyncio.sleep(max(0.0, start + next_seq / rate - loop.time()))
        last_started = loop.time()
        while tasks:
            await asyncio.gather(*list(tasks))
        finished = loop.time()

    return {
        "step": step,
        "rate": rate,
        "duration_s": duration,
        "requests": total,
        "start_wall_ns": wall_at_start_ns,
        "end_wall_ns": wall_at_start_ns + round(duration * 1e9),
        # what the generator really offered: requests over the time it took to start them
        "offered_per_s": total / (last_started - start + 1 / rate),
        "generator_max_late_ms": max_late_s * 1000,
        "answers_done_after_s": finished - start,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "retry_after_503": retry_after_503,
        "client_errors": errors,
        "accepted_seqs": sorted(accepted),
        "latencies_2xx_ms": latencies_ms,
        "peak_rss_kib": peak_rss_kib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--step", type=int, required=True, help="step number written into each payload")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    coro = run_step(args.url, args.api_key, args.rate, args.duration, args.step)
    cpu_start = time.process_time()  # after the imports: the step's own CPU
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    result["cpu_s"] = time.process_time() - cpu_start
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
