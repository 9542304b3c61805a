"""Client and sink rates against a given Danube broker next to the embedded broker, in one run (by hand).

Not part of ``make bench`` (that runs ``*_bench.py`` only): it needs a broker you started yourself, e.g. a
real Danube broker. Both brokers are measured in the same run, alternating, with the same code:

1. producer, reliable topic, one message in flight (strict order) and a window of 32;
2. live consumer: subscribed first (receive + ack, acks pipelined), then messages produced one in flight;
3. live SinkRuntime -> SurrealDB sink (embedded surrealkv store, batch 50): subscribed first, then messages
   produced one in flight; rows/s from the first send until every row is written.

Consumer and sink are measured live, not draining a backlog, because Danube 0.15.1 loses messages of a
subscription that falls behind (its dispatcher skips what its WAL broadcast dropped), stops answering sends
when a reliable subscription has no connected consumer, and skips messages when publishing outruns it
(docs/operations.md, "Verified against Danube"). Both brokers run the same code on the same machine; the
embedded broker runs as its own process on its defaults (``max_unacked_messages`` 10, like Danube's
``dispatch.max_unacked_messages``).

Usage: uv run python bench/broker_compare.py --service-url http://127.0.0.1:6650 [--messages N]
[--rounds R] [--json-out FILE]. Topics go to ``/default`` (override with --namespace).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from danube_connect_core.client import DanubeClient
from danube_connect_core.sink_runtime import SinkRuntime
from danube_connect_core.testing import make_config
from danube_embedded_broker.testing import BrokerProcess
from danube_sink_surrealdb.settings import SurrealDbSettings
from surrealdb_bench import CountingSink, payment

WINDOW = 32


def _topic(namespace: str, label: str) -> str:
    return f"/{namespace}/compare-{label}-{uuid.uuid4().hex[:8]}"


async def produce_rate(url: str, topic: str, n: int, window: int) -> float:
    """Messages/s of our producer with ``window`` sends in flight (as many concurrent callers)."""
    async with DanubeClient(url) as client:
        producer = await client.create_producer(topic, "bench", reliable=True, max_in_flight=window)
        await producer.send(b"{}")  # the topic exists (a new topic costs a lookup round on Danube)
        body = orjson.dumps(payment(0))
        counter = iter(range(n))

        async def caller() -> None:
            for _ in counter:
                await producer.send(body)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(window)))
        return n / (time.perf_counter() - start)


async def feed(url: str, topic: str, n: int) -> None:
    """``n`` payments on ``topic``, one message in flight (the topic was created by :func:`create_topic`)."""
    async with DanubeClient(url) as client:
        producer = await client.create_producer(topic, "bench", reliable=True)
        for i in range(n):
            await producer.send(orjson.dumps(payment(i)))


async def create_topic(url: str, topic: str) -> None:
    async with DanubeClient(url) as client:
        producer = await client.create_producer(topic, "bench", reliable=True)
        await producer.send(orjson.dumps(payment(-1)))  # subscriptions created after it start after it


async def consume_rate(url: str, topic: str, n: int) -> float:
    """Live: a consumer (receive + ack, acks pipelined) subscribed first, then ``n`` messages produced."""
    await create_topic(url, topic)
    async with DanubeClient(url) as client:
        consumer = await client.subscribe(topic, "raw", consumer_name="drain")
        pending: set[asyncio.Task[Any]] = set()
        start = time.perf_counter()
        producing = asyncio.create_task(feed(url, topic, n))
        for _ in range(n):
            msg = await asyncio.wait_for(consumer.receive(), 120)
            task = asyncio.create_task(consumer.ack(msg))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(producing, *pending)
        return n / (time.perf_counter() - start)


async def sink_rate(url: str, store: str, topic: str, n: int, table: str) -> float:
    """Live: the sink runtime subscribed first, then ``n`` messages produced; rows/s until all written."""
    await create_topic(url, topic)
    settings = SurrealDbSettings.model_validate(
        {
            "url": store,
            "topic_mappings": [{"topic": topic, "subscription": "bench", "table": table, "batch_size": 50}],
        }
    )
    config = make_config(url, "bench-compare", settings, processing={"metrics_port": 0, "batch_size": 50})
    sink = CountingSink(n)
    runtime = SinkRuntime(sink, config)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    await asyncio.sleep(2)  # let it subscribe (a subscription starts at the latest message)
    start = time.perf_counter()
    await feed(url, topic, n)
    await asyncio.wait_for(sink.done.wait(), 600)
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return n / elapsed


async def measure(brokers: dict[str, str], namespace: str, n: int, rounds: int, store: str) -> dict[str, Any]:
    rates: dict[str, dict[str, list[float]]] = {name: {} for name in brokers}
    for r in range(rounds):
        for name, url in brokers.items():  # alternate, so load changes hit both brokers alike
            row = rates[name]
            row.setdefault("produce_w1", []).append(
                await produce_rate(url, _topic(namespace, "w1"), n // 3, 1)
            )
            row.setdefault(f"produce_w{WINDOW}", []).append(
                await produce_rate(url, _topic(namespace, "w32"), n, WINDOW)
            )
            row.setdefault("consume", []).append(await consume_rate(url, _topic(namespace, "raw"), n))
            row.setdefault("sink_surrealdb_b50", []).append(
                await sink_rate(url, store, _topic(namespace, "sink"), n, f"t_{name}_{r}")
            )
    return {name: {k: statistics.median(v) for k, v in row.items()} for name, row in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--service-url", required=True, help="the broker to compare (e.g. a real Danube)")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        embedded = BrokerProcess(Path(tmp) / "broker", args=["--log-level", "WARNING"])
        brokers = {"embedded": embedded.start(), "given": args.service_url.rstrip("/")}
        try:
            store = f"surrealkv://{tmp}/surreal"
            results = asyncio.run(measure(brokers, args.namespace, args.messages, args.rounds, store))
        finally:
            embedded.stop()
    load = os.getloadavg()[0]
    print(f"{args.messages} messages, median of {args.rounds} rounds; given broker {args.service_url}")
    print(f"{'rate (msg/s)':28} {'embedded':>10} {'given':>10} {'given/embedded':>15}")
    for key in results["embedded"]:
        e, g = results["embedded"][key], results["given"][key]
        print(f"{key:28} {e:10.0f} {g:10.0f} {g / e:15.2f}")
    print(f"commit {commit.strip()}, {platform.platform()}, {os.cpu_count()} cores, load average {load:.1f}")
    if args.json_out:
        record = {
            "messages": args.messages,
            "rounds": args.rounds,
            "commit": commit.strip(),
            "load": load,
            "platform": platform.platform(),
            "service_url": args.service_url,
            "rates": results,
        }
        args.json_out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
