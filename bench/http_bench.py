"""HTTP sink throughput: SinkRuntime + HttpSink draining a backlog vs direct aiohttp requests.

    uv run python bench/http_bench.py [--records 3000] [--in-flight 32]

The broker runs in its own process (BrokerProcess); the target is a bare aiohttp handler in a separate
process answering 200 at once. The sink subscribes once, stops, N records are produced on a 4-partition
reliable topic, then the sink drains the backlog (record mode, one request per record). Floor, same run:
the same N JSON bodies POSTed directly with one aiohttp session at the same concurrency. Writes
bench/results/http.json. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from danube_connect_core.testing import http_get, make_config, produce, start_runtime
from danube_embedded_broker.testing import BrokerProcess
from danube_sink_http import HttpSettings, HttpSink
from result_files import result_path

TOPIC = "/default/bench-http"
SERVER = """
import sys
from aiohttp import web
count = 0
async def ingest(request):
    global count
    await request.read()
    count += 1
    return web.Response(text="ok")
async def stats(request):
    return web.Response(text=str(count))
app = web.Application()
app.router.add_post("/ingest", ingest)
app.router.add_get("/count", stats)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


async def count(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/count") as r:
        return int(await r.text())


async def direct(base: str, n: int, in_flight: int) -> float:
    bodies = [orjson.dumps({"i": i, "name": f"e{i}"}) for i in range(n)]
    gate = asyncio.Semaphore(in_flight)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as s:

        async def one(b: bytes) -> None:
            async with gate, s.post(f"{base}/ingest", data=b) as r:
                await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return n / (time.perf_counter() - started)


async def through_sink(url: str, base: str, n: int, in_flight: int) -> float:
    settings = HttpSettings.model_validate(
        {
            "url": f"{base}/ingest",
            "max_in_flight": in_flight,
            "topic_mappings": [{"topic": TOPIC, "subscription": "bench"}],
        }
    )
    cfg = make_config(url, "http-bench", settings, processing={"batch_size": 200})
    await produce(url, TOPIC, [], partitions=4)
    first = await start_runtime(HttpSink(), cfg)
    while (await asyncio.to_thread(http_get, first.port, "/ready"))[0] != 200:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await first.stop()
    await produce(url, TOPIC, [{"i": i, "name": f"e{i}"} for i in range(n)], partitions=4)
    async with aiohttp.ClientSession() as s:
        before = await count(s, base)
        running = await start_runtime(HttpSink(), cfg)
        started = time.perf_counter()
        while await count(s, base) - before < n:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
    await running.stop()
    return n / elapsed


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--in-flight", type=int, default=32)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="http-bench-"))
    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])  # noqa: ASYNC220
    broker = BrokerProcess(work / "broker")
    url = broker.start()
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.sleep(1.0)  # the target process starting
        floor = await direct(base, args.records, args.in_flight)
        sink = await through_sink(url, base, args.records, args.in_flight)
    finally:
        broker.stop()
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print(f"records={args.records} in_flight={args.in_flight}")
    print(f"direct aiohttp POSTs : {floor:8.0f} requests/s")
    print(f"SinkRuntime + sink   : {sink:8.0f} requests/s   ratio {sink / floor:.2f}x")
    out = {
        "records": args.records,
        "in_flight": args.in_flight,
        "direct_requests_per_s": round(floor, 1),
        "sink_requests_per_s": round(sink, 1),
        "ratio": round(sink / floor, 3),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
    }
    result_path("http.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
