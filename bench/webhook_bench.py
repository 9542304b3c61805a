"""Webhook source throughput against a bare aiohttp handler awaiting the same publish.

    uv run python bench/webhook_bench.py [--requests 3000] [--concurrency 64] [--repeats 5] [--partitions 4]

- floor: a bare aiohttp handler that reads the body and awaits ``producer.send(body)`` (no auth, no
  parsing, no validation, no metrics), answering 200 after the broker's ack;
- SDK path: a bare aiohttp handler that parses the body and awaits the runtime's ``sender.send`` (the
  SDK's publish path with schema validation and its metrics, none of the connector's HTTP pipeline);
- connector: the webhook source (SourceRuntime + WebhookSource) with api_key auth, the payment JSON Schema
  (validated on every request), routing key, metrics and attributes, answering 200 after the broker's ack.

Both publish through the SAME DanubeClient (the runtime is handed it) to a reliable topic with the same
partitions and in-flight window, on an embedded broker in its own process (`BrokerProcess`, fsync
`never`). Load comes from a separate process (aiohttp client, ``--concurrency`` connections, a fixed
number of requests per round, loopback only). Rounds run the three servers ``--repeats`` times, rotating
the order; the table shows the median requests/s and the ratios. Results go to
bench/results/webhook.json with the machine description. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# grpc logs a line per fork (the load generator is a subprocess); nothing else of interest at INFO
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import aiohttp
import orjson
from aiohttp import web
from danube_connect_core.client import DanubeClient
from danube_connect_core.records import SourceRecord
from danube_connect_core.source_runtime import SourceRuntime
from danube_connect_core.testing import make_config
from danube_embedded_broker.testing import BrokerProcess
from danube_source_webhook import WebhookSettings, WebhookSource
from result_files import result_path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = result_path("webhook.json")
SCHEMA = ROOT / "schemas" / "payment.json"
API_KEY = "bench-api-key-0123456789"
#: Goal: the webhook's server CPU per request at most this multiple of the bare handler's.
CPU_GOAL_RATIO = 1.15

# The load generator, run as `python -c LOAD <url> <requests> <concurrency>`: prints one JSON line.
LOAD = r"""
import asyncio, json, sys, time
import aiohttp

async def main(url, total, concurrency):
    headers = {"Content-Type": "application/json", "x-api-key": sys.argv[4]}
    statuses = {}
    next_i = 0
    async def worker(session):
        nonlocal next_i
        while next_i < total:
            i = next_i
            next_i += 1
            body = json.dumps({"event": "payment.succeeded", "amount": i, "currency": "USD",
                               "timestamp": 1705000000 + i, "customer": "cus_" + str(i % 97)})
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm-up: open the connections
        warm = json.dumps({"event": "payment.failed", "amount": 1, "currency": "EUR", "timestamp": 1})
        async with session.post(url, data=warm, headers=headers) as resp:
            await resp.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    print(json.dumps({"requests": total, "seconds": elapsed, "statuses": statuses}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


def machine() -> dict[str, Any]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        cpuinfo = ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return {
        "cpu": models[0] if models else (platform.processor() or platform.machine()),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "aiohttp": aiohttp.__version__,
        "load_average_at_start": os.getloadavg(),
    }


async def drive(url: str, requests: int, concurrency: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOAD,
        url,
        str(requests),
        str(concurrency),
        API_KEY,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 600)
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    return result


async def start_floor(client: DanubeClient, topic: str, partitions: int, window: int) -> web.AppRunner:
    producer = await client.create_producer(
        topic, "bench-floor", partitions=partitions, reliable=True, max_in_flight=window
    )

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        mid = await producer.send(body)
        return web.json_response({"status": "accepted", "partition": mid.partition, "offset": mid.offset})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def start_sdk_floor(sender: Any, topic: str) -> web.AppRunner:
    """A bare handler publishing through the runtime's sender: parse + schema validation + the SDK's
    publish path, none of the connector's HTTP pipeline (auth, checks, metrics, attributes, key)."""

    async def handle(request: web.Request) -> web.Response:
        value = orjson.loads(await request.read())
        published = await sender.send(SourceRecord(topic, value, "json"))
        return web.json_response({"status": "accepted", "partition": published.partition})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def runner_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        for sock in getattr(server, "sockets", None) or []:
            return int(sock.getsockname()[1])
    raise RuntimeError("no port")


async def start_connector(
    client: DanubeClient, service_url: str, topic: str, partitions: int, window: int
) -> tuple[SourceRuntime, WebhookSource, asyncio.Event, asyncio.Task[int]]:
    os.environ["WEBHOOK_API_KEY"] = API_KEY
    settings = WebhookSettings.model_validate(
        {
            "host": "127.0.0.1",
            "port": 0,
            "max_in_flight": window * partitions,  # the same per-partition window as the floor's
            "auth": {"type": "api_key"},
            "endpoints": [
                {
                    "path": "/hook",
                    "danube_topic": topic,
                    "partitions": partitions,
                    "reliable_dispatch": True,
                    "key": "/customer",
                }
            ],
        }
    )
    config = make_config(
        service_url,
        "webhook-bench",
        settings,
        processing={"max_in_flight": window, "log_level": "warning"},
        schemas=[
            {
                "topic": topic,
                "subject": "bench-payment",
                "schema_type": "json_schema",
                "schema_file": str(SCHEMA),
            }
        ],
    )
    connector = WebhookSource()
    runtime = SourceRuntime(connector, config, client=client)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    async with asyncio.timeout(60):
        while connector.server is None or connector.server.sender is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return runtime, connector, stop, task


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    info = machine()
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        broker = BrokerProcess(Path(tmp) / "data", args=["--fsync", "never"])
        url = await asyncio.to_thread(broker.start)
        client = DanubeClient(url)
        try:
            floor_runner = await start_floor(client, "/default/bench-floor", args.partitions, args.window)
            floor_url = f"http://127.0.0.1:{runner_port(floor_runner)}/hook"
            _, connector, stop, task = await start_connector(
                client, url, "/default/bench-webhook", args.partitions, args.window
            )
            hook_url = f"http://127.0.0.1:{connector.port}/hook"
            assert connector.server is not None
            sdk_runner = await start_sdk_floor(connector.server.sender, "/default/bench-webhook")
            sdk_url = f"http://127.0.0.1:{runner_port(sdk_runner)}/hook"
            targets = [("floor", floor_url), ("sdk", sdk_url), ("connector", hook_url)]
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in targets}
            # one short warm-up each (connections, caches, producers)
            for _, target in targets:
                await drive(target, max(200, args.requests // 10), args.concurrency)
            for r in range(args.repeats):
                # rotate the order so that drifting machine load does not favour one server
                for name, target in targets[r % 3 :] + targets[: r % 3]:
                    cpu_start = time.process_time()
                    result = await drive(target, args.requests, args.concurrency)
                    # CPU of this process (servers + client threads; not the broker, not the load) per
                    # request: much steadier than requests/s on a shared machine
                    result["server_cpu_us_per_request"] = (
                        (time.process_time() - cpu_start) / args.requests * 1e6
                    )
                    rounds[name].append(result)
                    print(
                        f"round {r + 1} {name:9s} {result['rps']:8.0f} req/s "
                        f"{result['server_cpu_us_per_request']:6.0f} us CPU/req  {result['statuses']}",
                        flush=True,
                    )
            await sdk_runner.cleanup()
            stop.set()
            await asyncio.wait_for(task, 60)
            await floor_runner.cleanup()
        finally:
            await client.close()
            await asyncio.to_thread(broker.stop)
    cpu = {name: statistics.median(r["server_cpu_us_per_request"] for r in rs) for name, rs in rounds.items()}
    floor = statistics.median(r["rps"] for r in rounds["floor"])
    sdk = statistics.median(r["rps"] for r in rounds["sdk"])
    hook = statistics.median(r["rps"] for r in rounds["connector"])
    info["load_average_at_end"] = os.getloadavg()
    return {
        "benchmark": "webhook",
        "machine": info,
        "settings": vars(args),
        "floor_rps_median": floor,
        "sdk_floor_rps_median": sdk,
        "connector_rps_median": hook,
        "ratio": hook / floor,
        "sdk_ratio": sdk / floor,
        "connector_vs_sdk_ratio": hook / sdk,
        "server_cpu_us_per_request_median": cpu,
        "cpu_ratio_floor_over_connector": cpu["floor"] / cpu["connector"],
        # issue 16's goal: the connector's server CPU per request <= 1.15x the bare handler's
        "cpu_ratio_connector_over_floor": cpu["connector"] / cpu["floor"],
        "cpu_goal_ratio": CPU_GOAL_RATIO,
        "goal_ratio": 0.8,
        "rounds": rounds,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=64, help="connections of the load generator")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--window", type=int, default=64, help="publish window per partition (both sides)")
    args = parser.parse_args()
    # Plain asyncio, as `danube-connect run` uses (danube_connect_core.lifecycle: grpc.aio streams
    # stall under uvloop); the webhook source also refuses uvloop's server object at start-up.
    result = asyncio.run(main_async(args))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print()
    cpu = result["server_cpu_us_per_request_median"]
    rows = [
        ("bare aiohttp handler awaiting producer.send (floor)", "floor_rps_median", "floor"),
        ("bare handler awaiting the runtime's sender.send (SDK path)", "sdk_floor_rps_median", "sdk"),
        ("webhook source: api_key + JSON Schema + awaited publish", "connector_rps_median", "connector"),
    ]
    print("| server | requests/s (median) | server CPU us/request (median) |")
    print("|---|---:|---:|")
    for label, rps_key, name in rows:
        print(f"| {label} | {result[rps_key]:.0f} | {cpu[name]:.0f} |")
    print(f"\nratio connector / floor: {result['ratio']:.2f} (goal >= 0.8)")
    cpu_ratio = result["cpu_ratio_floor_over_connector"]
    print(f"CPU ratio floor / connector (capacity ratio when CPU-bound): {cpu_ratio:.2f}")
    print(
        f"server CPU per request connector / floor: {result['cpu_ratio_connector_over_floor']:.2f}x "
        f"(goal <= {CPU_GOAL_RATIO}x); load average at end {result['machine']['load_average_at_end']}"
    )
    sdk_ratio, vs_sdk = result["sdk_ratio"], result["connector_vs_sdk_ratio"]
    print(f"ratio SDK path / floor: {sdk_ratio:.2f}; connector / SDK path: {vs_sdk:.2f}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
