"""MQTT source throughput end to end (mosquitto -> danube-source-mqtt -> Danube), against its floor.

    uv run python bench/mqtt_bench.py [--messages 3000] [--repeats 2]

Everything runs as real processes on this machine: mosquitto (Debian package), the embedded broker
(`BrokerProcess`), the connector (`danube-connect run mqtt`). Method per scenario: the connector runs
once to create its persistent session, stops; N QoS 1 messages (128-byte JSON) are published to
mosquitto, which queues them for the session; the connector starts again and the clock runs from
/ready until its `danube_connector_messages_sent_total` reaches N (acks to MQTT happen after each
Danube ack, invariant 1). So the number is the connector's drain rate, not the publisher's.

Floor, measured in the same run against the same broker process: the same Danube client
(`DanubeClient.create_producer`, reliable topic, same window) publishing N prepared payloads, one at a
time (sequential) and with 64 in flight. Results: bench/results/mqtt.json. Not a test: nothing asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from danube_connect_core.client import DanubeClient
from danube_connect_core.testing import ConnectorProcess, http_get
from danube_embedded_broker.testing import BrokerProcess
from danube_source_mqtt.testing import Mosquitto, Publisher, mosquitto_binary, wait_ready
from result_files import result_path

RESULTS = result_path("mqtt.json")
SENT = re.compile(r'^danube_connector_messages_sent_total\{[^}]*topic="/iot/[^"]*"\} ([0-9.e+]+)$', re.M)


def machine() -> dict[str, Any]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        cpuinfo = ""
    models = [ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")]
    return {
        "cpu": models[0] if models else platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }


def payload(i: int) -> bytes:
    return orjson.dumps({"id": i, "celsius": 21.5, "sensor": f"s{i % 8}", "pad": "x" * 64})


async def floor(url: str, n: int, concurrency: int) -> float:
    client = DanubeClient(url)
    try:
        producer = await client.create_producer(
            f"/iot/floor-{concurrency}-{time.monotonic_ns()}", "floor", reliable=True, max_in_flight=64
        )
        data = [payload(i) for i in range(n)]
        started = time.perf_counter()
        if concurrency == 1:
            for d in data:
                await producer.send(d, attributes={"mqtt.topic": "t"}, key="sensors/s0/temp")
        else:
            sem = asyncio.Semaphore(concurrency)

            async def one(d: bytes) -> None:
                async with sem:
                    await producer.send(d, attributes={"mqtt.topic": "t"}, key="sensors/s0/temp")

            await asyncio.gather(*(one(d) for d in data))
        elapsed = time.perf_counter() - started
        await producer.close()
        return n / elapsed
    finally:
        await client.close()


def config_text(url: str, mqtt_port: int, name: str, partitions: int, topics: int) -> str:
    parts = f"partitions = {partitions}\n" if partitions > 1 else ""
    return f"""
danube_service_url = "{url}"
connector_name = "{name}"
[processing]
metrics_port = 0
log_level = "warning"
[mqtt]
broker_host = "127.0.0.1"
broker_port = {mqtt_port}
client_id = "{name}"
[[mqtt.topic_mappings]]
mqtt_topic = "bench/+"
danube_topic = "/iot/{name}"
qos = 1
{parts}"""


def sent_total(port: int) -> float:
    _, body = http_get(port, "/metrics")
    return sum(float(v) for v in SENT.findall(body))


async def connector_run(
    workdir: Path, url: str, mosq: Mosquitto, n: int, partitions: int, topics: int, tag: str
) -> float:
    name = f"bench-{tag}-{time.monotonic_ns() % 10**9}"
    cfg = workdir / f"{name}.toml"
    cfg.write_text(config_text(url, mosq.port, name, partitions, topics))
    # 1. create the persistent session (subscription), then go away
    proc = ConnectorProcess("mqtt", cfg, env={"LOG_LEVEL": "info"}).start()
    port = await asyncio.to_thread(proc.metrics_port)
    await wait_ready(port)
    proc.signal(signal.SIGTERM)
    await asyncio.to_thread(proc.wait, 60)
    # 2. N messages queued by mosquitto for the session
    pub = await asyncio.to_thread(Publisher, mosq.port, f"pub-{name}")
    await asyncio.to_thread(pub.publish_all, [(f"bench/t{i % topics}", payload(i)) for i in range(n)])
    await asyncio.to_thread(pub.close)
    # 3. the connector drains them: time from /ready to N sent
    proc = ConnectorProcess("mqtt", cfg, env={"LOG_LEVEL": "info"}).start()
    try:
        port = await asyncio.to_thread(proc.metrics_port)
        await wait_ready(port)
        started = time.perf_counter()
        async with asyncio.timeout(600):
            while await asyncio.to_thread(sent_total, port) < n:  # noqa: ASYNC110 - polling /metrics
                await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        proc.signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
        return n / elapsed
    finally:
        proc.kill()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    n = args.messages
    binary = mosquitto_binary()
    if binary is None:
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker = BrokerProcess(workdir / "broker", args=["--namespace", "iot"])
        broker.start()
        mosq = Mosquitto(binary, workdir / "mosquitto").start()
        try:
            for _ in range(args.repeats):
                for label, coro in [
                    ("floor: client send, sequential", lambda: floor(broker.url, n, 1)),
                    ("floor: client send, 64 in flight", lambda: floor(broker.url, n, 64)),
                    (
                        "mqtt: 1 partition, 8 MQTT topics (ordered lanes)",
                        lambda: connector_run(workdir, broker.url, mosq, n, 1, 8, "p1"),
                    ),
                    (
                        "mqtt: 1 partition, 1 MQTT topic (one lane)",
                        lambda: connector_run(workdir, broker.url, mosq, n, 1, 1, "one"),
                    ),
                    (
                        "mqtt: 4 partitions, 8 MQTT topics (concurrent)",
                        lambda: connector_run(workdir, broker.url, mosq, n, 4, 8, "p4"),
                    ),
                ]:
                    rate = await coro()
                    results.setdefault(label, []).append(rate)
                    print(f"{label}: {rate:,.0f} msg/s", flush=True)
        finally:
            mosq.stop()
            broker.stop()
    seq = statistics.median(results["floor: client send, sequential"])
    win = statistics.median(results["floor: client send, 64 in flight"])
    print(f"\n{n} messages, median of {args.repeats} runs\n")
    print("| scenario | msg/s | vs sequential floor | vs 64-in-flight floor |")
    print("|---|---:|---:|---:|")
    rows = []
    for label, rates in results.items():
        med = statistics.median(rates)
        rows.append({"scenario": label, "msgs_per_s": med, "runs": rates})
        print(f"| {label} | {med:,.0f} | {med / seq:.2f}x | {med / win:.2f}x |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "messages": n,
                "repeats": args.repeats,
                "machine": {**machine(), "loadavg_end": os.getloadavg()},
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
