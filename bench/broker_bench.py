"""Embedded broker throughput through the raw generated gRPC stubs: the floor other benches compare to.

    uv run python bench/broker_bench.py [--scale 1.0] [--repeats 3] [--payload-bytes 256]

The broker runs in its own process (`BrokerProcess`, default settings: fsync `interval`,
max_unacked_messages 10). This process drives it with no client library in between:

- send, sequential: one SendMessage awaited at a time (one round trip per message);
- send, 100 concurrent: 100 SendMessage calls in flight at any time;
- receive+ack: a subscription created before the messages were produced, one ReceiveMessages stream,
  every message acked (inline: await each Ack; pipelined: Ack calls not awaited before the next receive).

The same through a sync `grpc` stub, and, as a reference, sends to a bare grpc.aio server in its own
process that answers at once (what the gRPC stack alone costs here; the broker's own work is the rest).

Each scenario runs on a fresh topic `--repeats` times; the table shows the median (and min-max). Results
go to bench/results/broker.json with the machine description. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from danube_connect_core.proto import DanubeApi_pb2 as api
from danube_connect_core.proto import DanubeApi_pb2_grpc as _api_grpc
from danube_embedded_broker.testing import BrokerProcess
from google.protobuf import __version__ as protobuf_version
from result_files import result_path

# The generated *_grpc modules carry no type information.
api_grpc: Any = _api_grpc

RESULTS = result_path("broker.json")
CONCURRENCY = 100


def machine() -> dict[str, Any]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        cpuinfo = ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return {
        "cpu": models[0] if models else (platform.processor() or platform.machine()),
        "cores": os.cpu_count(),
        "virtualized": "hypervisor" in cpuinfo,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "grpcio": grpc.__version__,
        "protobuf": protobuf_version,
    }


@dataclass
class Result:
    name: str
    api: str  # "grpc.aio", "grpc sync" or "grpc.aio -> bare server"
    messages: int
    runs_s: list[float]

    @property
    def rates(self) -> list[float]:
        return [self.messages / s for s in self.runs_s]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "api": self.api,
            "messages": self.messages,
            "seconds": [round(s, 4) for s in self.runs_s],
            "msgs_per_s_median": round(statistics.median(self.rates)),
            "msgs_per_s_min": round(min(self.rates)),
            "msgs_per_s_max": round(max(self.rates)),
        }


def topic_name(kind: str) -> str:
    return f"/default/bench_{kind}_{uuid.uuid4().hex[:8]}"


class Ids:
    def __init__(self) -> None:
        self._next = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._next += 1
            return self._next


def message(ids: Ids, producer_id: int, topic: str, url: str, payload: bytes) -> api.StreamMessage:
    return api.StreamMessage(
        request_id=ids(),
        msg_id=api.MsgID(producer_id=producer_id, topic_name=topic, broker_addr=url),
        payload=payload,
        publish_time=int(time.time() * 1000),
        producer_name="bench",
    )


# ------------------------------------------------------------------------------------------ grpc.aio


class AioBench:
    def __init__(self, url: str, payload: bytes) -> None:
        self.url, self.payload, self.ids = url, payload, Ids()
        self.channel = grpc.aio.insecure_channel(url.removeprefix("http://"))
        self.producers = api_grpc.ProducerServiceStub(self.channel)
        self.consumers = api_grpc.ConsumerServiceStub(self.channel)

    async def producer(self, topic: str, *, reliable: bool = True) -> int:
        response = await self.producers.CreateProducer(
            api.ProducerRequest(
                request_id=self.ids(),
                producer_name="bench",
                topic_name=topic,
                dispatch_strategy=api.Reliable if reliable else api.NonReliable,
            )
        )
        return int(response.producer_id)

    async def send_sequential(self, count: int, *, reliable: bool = True) -> float:
        topic = topic_name("seq")
        pid = await self.producer(topic, reliable=reliable)
        start = time.perf_counter()
        for _ in range(count):
            await self.producers.SendMessage(message(self.ids, pid, topic, self.url, self.payload))
        return time.perf_counter() - start

    async def _send_concurrent(self, topic: str, pid: int, count: int) -> None:
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await self.producers.SendMessage(message(self.ids, pid, topic, self.url, self.payload))

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    async def send_concurrent(self, count: int) -> float:
        topic = topic_name("conc")
        pid = await self.producer(topic)
        start = time.perf_counter()
        await self._send_concurrent(topic, pid, count)
        return time.perf_counter() - start

    async def receive_ack(self, count: int, *, pipelined: bool) -> float:
        topic = topic_name("recv")
        pid = await self.producer(topic)
        consumer = await self.consumers.Subscribe(
            api.ConsumerRequest(
                request_id=self.ids(),
                topic_name=topic,
                consumer_name="bench-consumer",
                subscription="bench",
                subscription_type=api.ConsumerRequest.Shared,
            )
        )
        await self._send_concurrent(topic, pid, count)
        pending: set[asyncio.Task[Any]] = set()
        start = time.perf_counter()
        call = self.consumers.ReceiveMessages(
            api.ReceiveRequest(request_id=self.ids(), consumer_id=consumer.consumer_id)
        )
        received = 0
        async for msg in call:
            ack = self.consumers.Ack(
                api.AckRequest(request_id=msg.request_id, msg_id=msg.msg_id, subscription_name="bench")
            )
            if pipelined:
                task = asyncio.ensure_future(ack)
                pending.add(task)
                task.add_done_callback(pending.discard)
            else:
                await ack
            received += 1
            if received == count:
                break
        await asyncio.gather(*pending)
        elapsed = time.perf_counter() - start
        call.cancel()
        return elapsed

    async def close(self) -> None:
        await self.channel.close()


# ------------------------------------------------------------------------------------- grpc (sync)


class SyncBench:
    def __init__(self, url: str, payload: bytes) -> None:
        self.url, self.payload, self.ids = url, payload, Ids()
        self.channel = grpc.insecure_channel(url.removeprefix("http://"))
        self.producers = api_grpc.ProducerServiceStub(self.channel)
        self.consumers = api_grpc.ConsumerServiceStub(self.channel)

    def producer(self, topic: str) -> int:
        response = self.producers.CreateProducer(
            api.ProducerRequest(
                request_id=self.ids(), producer_name="bench", topic_name=topic, dispatch_strategy=api.Reliable
            )
        )
        return int(response.producer_id)

    def send_sequential(self, count: int) -> float:
        topic = topic_name("syncseq")
        pid = self.producer(topic)
        start = time.perf_counter()
        for _ in range(count):
            self.producers.SendMessage(message(self.ids, pid, topic, self.url, self.payload))
        return time.perf_counter() - start

    def _send_concurrent(self, topic: str, pid: int, count: int) -> None:
        in_flight: list[Future[Any]] = []
        for _ in range(count):
            if len(in_flight) >= CONCURRENCY:
                in_flight.pop(0).result()
            in_flight.append(
                self.producers.SendMessage.future(message(self.ids, pid, topic, self.url, self.payload))
            )
        for future in in_flight:
            future.result()

    def send_concurrent(self, count: int) -> float:
        topic = topic_name("syncconc")
        pid = self.producer(topic)
        start = time.perf_counter()
        self._send_concurrent(topic, pid, count)
        return time.perf_counter() - start

    def receive_ack(self, count: int) -> float:
        topic = topic_name("syncrecv")
        pid = self.producer(topic)
        consumer = self.consumers.Subscribe(
            api.ConsumerRequest(
                request_id=self.ids(),
                topic_name=topic,
                consumer_name="bench-consumer",
                subscription="bench",
                subscription_type=api.ConsumerRequest.Shared,
            )
        )
        self._send_concurrent(topic, pid, count)
        start = time.perf_counter()
        call = self.consumers.ReceiveMessages(
            api.ReceiveRequest(request_id=self.ids(), consumer_id=consumer.consumer_id)
        )
        for received, msg in enumerate(call, start=1):
            self.consumers.Ack(
                api.AckRequest(request_id=msg.request_id, msg_id=msg.msg_id, subscription_name="bench")
            )
            if received == count:
                break
        elapsed = time.perf_counter() - start
        call.cancel()
        return elapsed

    def close(self) -> None:
        self.channel.close()


# ------------------------------------------------- reference: a bare grpc.aio server (no broker logic)


async def serve_bare() -> None:
    """ProducerService answering at once: what the gRPC stack alone costs on this machine."""

    class Bare(api_grpc.ProducerServiceServicer):  # type: ignore[misc]
        async def CreateProducer(self, request: Any, context: Any) -> Any:
            return api.ProducerResponse(request_id=request.request_id, producer_id=1, producer_name="bench")

        async def SendMessage(self, request: Any, context: Any) -> Any:
            return api.MessageResponse(request_id=request.request_id)

    server = grpc.aio.server()
    api_grpc.add_ProducerServiceServicer_to_server(Bare(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"ready {port}", flush=True)
    await server.wait_for_termination()


def run_bare(payload: bytes, n: dict[str, int], repeats: int) -> list[Result]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve-bare"],
        stdout=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])

        async def scenarios() -> list[Result]:
            bench = AioBench(f"http://127.0.0.1:{port}", payload)
            await bench.send_sequential(200)
            seq = [await bench.send_sequential(n["seq"]) for _ in range(repeats)]
            conc = [await bench.send_concurrent(n["conc"]) for _ in range(repeats)]
            await bench.close()
            return [
                Result("send, sequential", "grpc.aio -> bare server", n["seq"], seq),
                Result(f"send, {CONCURRENCY} concurrent", "grpc.aio -> bare server", n["conc"], conc),
            ]

        results = asyncio.run(scenarios())
        print("  done: grpc.aio  against a bare grpc.aio server", file=sys.stderr, flush=True)
        return results
    finally:
        server.terminate()
        server.wait()


# ---------------------------------------------------------------------------------------------- main


async def run_aio(url: str, payload: bytes, n: dict[str, int], repeats: int) -> list[Result]:
    bench = AioBench(url, payload)
    scenarios: list[tuple[str, int, Callable[[], Awaitable[float]]]] = [
        ("send, sequential (reliable)", n["seq"], lambda: bench.send_sequential(n["seq"])),
        (
            "send, sequential (non-reliable)",
            n["seq"],
            lambda: bench.send_sequential(n["seq"], reliable=False),
        ),
        (f"send, {CONCURRENCY} concurrent (reliable)", n["conc"], lambda: bench.send_concurrent(n["conc"])),
        ("receive+ack, ack awaited inline", n["recv"], lambda: bench.receive_ack(n["recv"], pipelined=False)),
        ("receive+ack, acks pipelined", n["recv"], lambda: bench.receive_ack(n["recv"], pipelined=True)),
    ]
    await bench.send_sequential(200)  # warm-up: channel, broker code paths
    results = []
    for name, count, scenario in scenarios:
        runs = [await scenario() for _ in range(repeats)]
        results.append(Result(name, "grpc.aio", count, runs))
        print(f"  done: grpc.aio  {name}", file=sys.stderr, flush=True)
    await bench.close()
    return results


def run_sync(url: str, payload: bytes, n: dict[str, int], repeats: int) -> list[Result]:
    bench = SyncBench(url, payload)
    scenarios: list[tuple[str, int, Callable[[], float]]] = [
        ("send, sequential (reliable)", n["seq"], lambda: bench.send_sequential(n["seq"])),
        (f"send, {CONCURRENCY} concurrent (reliable)", n["conc"], lambda: bench.send_concurrent(n["conc"])),
        ("receive+ack, ack awaited inline", n["recv"], lambda: bench.receive_ack(n["recv"])),
    ]
    bench.send_sequential(200)
    results = []
    for name, count, scenario in scenarios:
        results.append(Result(name, "grpc sync", count, [scenario() for _ in range(repeats)]))
        print(f"  done: grpc sync {name}", file=sys.stderr, flush=True)
    bench.close()
    return results


def table(results: list[Result]) -> str:
    head = f"{'scenario':<40} {'client stub':<23} {'msgs':>6} {'msgs/s (median)':>16} {'min-max':>15}"
    lines = [head, "-" * len(head)]
    for r in results:
        rates = r.rates
        span = f"{min(rates):.0f}-{max(rates):.0f}"
        lines.append(f"{r.name:<40} {r.api:<23} {r.messages:>6} {statistics.median(rates):>16.0f} {span:>15}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--payload-bytes", type=int, default=256)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        asyncio.run(serve_bare())
        return
    n = {k: max(100, int(v * args.scale)) for k, v in {"seq": 2000, "conc": 5000, "recv": 3000}.items()}
    payload = b"x" * args.payload_bytes

    load_before = os.getloadavg()[0]  # the machine may be shared: record how busy it was
    with tempfile.TemporaryDirectory(prefix="broker-bench-") as data_dir:
        broker = BrokerProcess(Path(data_dir), port=0)
        url = broker.start()
        try:
            print(f"embedded broker at {url} (own process); payload {args.payload_bytes} B", file=sys.stderr)
            results = asyncio.run(run_aio(url, payload, n, args.repeats))
            results += run_sync(url, payload, n, args.repeats)
        finally:
            broker.stop()
    results += run_bare(payload, n, args.repeats)

    info = machine()
    info["load_average_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(f"\nEmbedded broker, raw stubs - {info['cpu']}, {info['cores']} cores, Python {info['python']}")
    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "embedded broker, raw gRPC stubs",
        "machine": info,
        "settings": {
            "payload_bytes": args.payload_bytes,
            "repeats": args.repeats,
            "concurrency": CONCURRENCY,
            "broker": "BrokerProcess defaults (own process, fsync interval, max_unacked_messages 10)",
        },
        "results": [r.as_json() for r in results],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
