"""OTLP source throughput: OTLP/HTTP export requests per second against a bare aiohttp handler awaiting the
same publish, measured in the same run.

    uv run python bench/otel_bench.py [--requests 3000] [--concurrency 64] [--repeats 3] [--spans 10]

- floor: a bare aiohttp handler that reads the body and awaits ``producer.send(body)`` (no content-type
  or auth check, no parsing, no metrics), answering 200 after the broker's ack;
- connector: the OTLP source (SourceRuntime + OtelSource) with bearer auth, parsing the protobuf
  ``ExportTraceServiceRequest``, one message per resource re-serialised as OTLP protobuf (schema_type
  bytes), attributes, routing key by service.name and its metrics, answering the export response after the
  broker's ack.

Each request carries ``--spans`` spans of one resource (a small SDK batch), so both servers publish one
message per request of about the same size. Both publish through the SAME DanubeClient to a reliable topic
with the same partitions and per-partition window, on an embedded broker in its own process (fsync
``never``). Load comes from a separate process (aiohttp, ``--concurrency`` connections, loopback only);
rounds rotate the order; the medians and the ratio go to bench/results/otel.json with the machine
description. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from danube_connect_core.client import DanubeClient
from danube_connect_core.source_runtime import SourceRuntime
from danube_connect_core.testing import make_config
from danube_embedded_broker.testing import BrokerProcess
from danube_source_otel import OtelSettings, OtelSource
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from result_files import result_path
from webhook_bench import machine, runner_port, start_floor

RESULTS = result_path("otel.json")
TOKEN = "bench-token-0123456789"

# The load generator, run as `python -c LOAD <url> <requests> <concurrency> <token> <body file>`.
LOAD = r"""
import asyncio, json, sys, time
import aiohttp

async def main(url, total, concurrency, token, body):
    headers = {"Content-Type": "application/x-protobuf", "Authorization": "Bearer " + token}
    statuses = {}
    next_i = 0
    async def worker(session):
        nonlocal next_i
        while next_i < total:
            next_i += 1
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async with session.post(url, data=body, headers=headers) as resp:  # warm-up
            await resp.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    print(json.dumps({"requests": total, "seconds": elapsed, "statuses": statuses}))

with open(sys.argv[5], "rb") as f:
    body = f.read()
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], body))
"""


def export_body(spans: int) -> bytes:
    """An ExportTraceServiceRequest with one resource and ``spans`` spans, as an SDK batch looks."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    json_format.ParseDict(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bench"}}]},
                    "scopeSpans": [
                        {
                            "scope": {"name": "bench"},
                            "spans": [
                                {
                                    "traceId": "W47/95gDgQPSabYzgT/GDA==",
                                    "spanId": "AAAAAAAAAAE=",
                                    "name": f"GET /orders/{i}",
                                    "kind": 2,
                                    "startTimeUnixNano": str(1_700_000_000_000_000_000 + i),
                                    "endTimeUnixNano": str(1_700_000_000_000_500_000 + i),
                                    "attributes": [{"key": "http.status_code", "value": {"intValue": "200"}}],
                                }
                                for i in range(spans)
                            ],
                        }
                    ],
                }
            ]
        },
        request,
    )
    return request.SerializeToString()


async def drive(url: str, requests: int, concurrency: int, body_file: Path) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOAD, url, str(requests), str(concurrency), TOKEN, str(body_file),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 600)
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    return result


async def start_connector(
    client: DanubeClient, service_url: str, topic: str, partitions: int, window: int
) -> tuple[OtelSource, asyncio.Event, asyncio.Task[int]]:
    settings = OtelSettings.model_validate(
        {
            "host": "127.0.0.1",
            "http_port": 0,
            "grpc": False,
            "traces_topic": topic,
            "metrics_topic": "",
            "logs_topic": "",
            "partitions": partitions,
            "max_in_flight": window * partitions,  # the same per-partition window as the floor's
            "encoding": "protobuf",
            "auth": "bearer",
            "token": TOKEN,
        }
    )
    config = make_config(
        service_url,
        "otel-bench",
        settings,
        processing={"max_in_flight": window, "log_level": "warning"},
        schemas=[{"topic": topic, "subject": "bench-otlp-traces", "schema_type": "bytes"}],
    )
    connector = OtelSource()
    runtime = SourceRuntime(connector, config, client=client)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    async with asyncio.timeout(60):
        while connector.intake is None or connector.intake.sender is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return connector, stop, task


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    info = machine()
    with tempfile.TemporaryDirectory(prefix="otel-bench-") as tmp:
        body_file = Path(tmp) / "export.pb"
        body_file.write_bytes(export_body(args.spans))
        broker = BrokerProcess(Path(tmp) / "data", args=["--fsync", "never"])
        url = await asyncio.to_thread(broker.start)
        client = DanubeClient(url)
        try:
            floor_runner = await start_floor(
                client, "/default/bench-otel-floor", args.partitions, args.window
            )
            floor_url = f"http://127.0.0.1:{runner_port(floor_runner)}/hook"
            connector, stop, task = await start_connector(
                client, url, "/default/bench-otel", args.partitions, args.window
            )
            targets = [
                ("floor", floor_url),
                ("connector", f"http://127.0.0.1:{connector.http_port}/v1/traces"),
            ]
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in targets}
            for _, target in targets:
                await drive(target, max(200, args.requests // 10), args.concurrency, body_file)
            for r in range(args.repeats):
                for name, target in targets[r % 2 :] + targets[: r % 2]:
                    cpu_start = time.process_time()
                    result = await drive(target, args.requests, args.concurrency, body_file)
                    result["server_cpu_us_per_request"] = (
                        (time.process_time() - cpu_start) / args.requests * 1e6
                    )
                    rounds[name].append(result)
                    print(
                        f"round {r + 1} {name:9s} {result['rps']:8.0f} req/s "
                        f"{result['server_cpu_us_per_request']:6.0f} us CPU/req  {result['statuses']}",
                        flush=True,
                    )
            stop.set()
            await asyncio.wait_for(task, 60)
            await floor_runner.cleanup()
        finally:
            await client.close()
            await asyncio.to_thread(broker.stop)
    cpu = {name: statistics.median(r["server_cpu_us_per_request"] for r in rs) for name, rs in rounds.items()}
    floor = statistics.median(r["rps"] for r in rounds["floor"])
    otel = statistics.median(r["rps"] for r in rounds["connector"])
    info["load_average_at_end"] = os.getloadavg()
    return {
        "benchmark": "otel",
        "machine": info,
        "settings": vars(args),
        "request_bytes": len(export_body(args.spans)),
        "floor_rps_median": floor,
        "connector_rps_median": otel,
        "ratio": otel / floor,
        "server_cpu_us_per_request_median": cpu,
        "cpu_ratio_floor_over_connector": cpu["floor"] / cpu["connector"],
        "rounds": rounds,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=64, help="connections of the load generator")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--window", type=int, default=64, help="publish window per partition (both sides)")
    parser.add_argument("--spans", type=int, default=10, help="spans per export request")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))  # plain asyncio, as `danube-connect run` uses
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    cpu = result["server_cpu_us_per_request_median"]
    rows = [
        ("bare aiohttp handler awaiting producer.send (floor)", result["floor_rps_median"], cpu["floor"]),
        (
            "OTLP source: bearer + protobuf parse + awaited publish",
            result["connector_rps_median"],
            cpu["connector"],
        ),
    ]
    print("\n| server | requests/s (median) | server CPU us/request (median) |\n|---|---:|---:|")
    for label, rps, us in rows:
        print(f"| {label} | {rps:.0f} | {us:.0f} |")
    ratio, cpu_ratio = result["ratio"], result["cpu_ratio_floor_over_connector"]
    print(f"\nratio connector / floor: {ratio:.2f}; CPU floor / connector: {cpu_ratio:.2f}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
