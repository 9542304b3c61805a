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

CPU per delivered message (the embedded broker's goal): a pipeline of 32 SendMessage calls in flight while
one ReceiveMessages stream receives and acks every message (acks not awaited before the next receive),
through the broker; the broker process's CPU time (user + system, all threads, from /proc) per message,
vs the bare server's CPU time per unary call at the same 32 in flight, rounds alternating so both see the
same machine load. A third figure: the same pipeline through a server with no broker logic at all (a queue
from SendMessage to the stream, nothing stored), i.e. what the three gRPC operations alone cost.
`--profile FILE` samples the broker with py-spy meanwhile (collapsed stacks into FILE, top functions into
the results); `--broker-src DIR` runs the broker from other sources (an older commit, for before/after).

Each scenario runs on a fresh topic `--repeats` times; the table shows the median (and min-max). Results
go to bench/results/broker.json with the machine description. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
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
from machine_info import process_cpu_s
from result_files import result_path

# The generated *_grpc modules carry no type information.
api_grpc: Any = _api_grpc

RESULTS = result_path("broker.json")
BENCH_DIR = Path(__file__).resolve().parent
CONCURRENCY = 100
#: Sends in flight in the pipeline scenario (as the client benchmark's window) and in its bare-call floor.
PIPELINE_IN_FLIGHT = 32
#: Goals of issue 16: broker CPU per delivered message <= 2x one bare unary call (same run), and the
#: pipeline >= 2x its rate before the broker's optimisation (PIPELINE_BEFORE, measured on this machine).
CPU_RATIO_GOAL = 2.0
#: In-flight window of the bare pipeline server (the broker's default max_unacked_messages).
BARE_WINDOW = 10
PIPELINE_RATIO_GOAL = 2.0
#: The pipeline scenario on the broker as it was before its optimisation (commit fc26fab), on this machine
#: (2 shared vCPUs): the median of three runs' medians (1,108, 962 and 896 msg/s). The context row the
#: pipeline goal compares with; bench/README.md also has before/after pairs measured in the same runs.
#: The commit before the broker's optimisation (issue 16): the pipeline goal's "before", measured in the same
#: run when git can extract it.
BEFORE_COMMIT = "fc26fabb46d3f658e1cefb92e3177a0f559faa30"
PIPELINE_BEFORE: dict[str, Any] = {"msgs_per_s": 962.0, "measured": "fc26fab, 2026-12-04 07:00 UTC, load 3-7"}


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

    async def _send_concurrent(self, topic: str, pid: int, count: int, in_flight: int = CONCURRENCY) -> None:
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await self.producers.SendMessage(message(self.ids, pid, topic, self.url, self.payload))

        await asyncio.gather(*(worker() for _ in range(in_flight)))

    async def send_concurrent(self, count: int, in_flight: int = CONCURRENCY) -> float:
        topic = topic_name("conc")
        pid = await self.producer(topic)
        start = time.perf_counter()
        await self._send_concurrent(topic, pid, count, in_flight)
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

    async def pipeline(self, count: int) -> float:
        """Producer and consumer at once: PIPELINE_IN_FLIGHT sends in flight while one stream receives and
        acks (acks not awaited before the next receive); returns the seconds until the last ack is answered.
        """
        topic = topic_name("pipe")
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
        call = self.consumers.ReceiveMessages(
            api.ReceiveRequest(request_id=self.ids(), consumer_id=consumer.consumer_id)
        )
        await call.initial_metadata()  # the stream is open before the first send

        async def consume() -> None:
            pending: set[asyncio.Task[Any]] = set()
            received = 0
            async for msg in call:
                task = asyncio.ensure_future(
                    self.consumers.Ack(
                        api.AckRequest(
                            request_id=msg.request_id, msg_id=msg.msg_id, subscription_name="bench"
                        )
                    )
                )
                pending.add(task)
                task.add_done_callback(pending.discard)
                received += 1
                if received == count:
                    break
            await asyncio.gather(*pending)

        start = time.perf_counter()
        await asyncio.gather(consume(), self._send_concurrent(topic, pid, count, PIPELINE_IN_FLIGHT))
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
    """ProducerService answering at once: what the gRPC stack alone costs on this machine.

    Also a ConsumerService with no broker logic at all (messages handed from SendMessage to the one open
    stream through a queue, at most BARE_WINDOW unacked, nothing stored): the pipeline's gRPC floor.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()
    window = asyncio.Semaphore(BARE_WINDOW)
    offsets = iter(range(1 << 62))

    class Bare(api_grpc.ProducerServiceServicer):  # type: ignore[misc]
        async def CreateProducer(self, request: Any, context: Any) -> Any:
            return api.ProducerResponse(request_id=request.request_id, producer_id=1, producer_name="bench")

        async def SendMessage(self, request: Any, context: Any) -> Any:
            if request.msg_id.topic_name.startswith("/default/bench_pipe"):
                request.msg_id.topic_offset = next(offsets)
                request.subscription_name = "bench"
                queue.put_nowait(request)
            return api.MessageResponse(request_id=request.request_id)

    class BareConsumer(api_grpc.ConsumerServiceServicer):  # type: ignore[misc]
        async def Subscribe(self, request: Any, context: Any) -> Any:
            return api.ConsumerResponse(
                request_id=request.request_id, consumer_id=1, consumer_name=request.consumer_name
            )

        async def ReceiveMessages(self, request: Any, context: Any) -> Any:
            await context.send_initial_metadata(())
            while True:
                await window.acquire()
                yield await queue.get()

        async def Ack(self, request: Any, context: Any) -> Any:
            window.release()
            return api.AckResponse(request_id=request.request_id)

    server = grpc.aio.server()
    api_grpc.add_ProducerServiceServicer_to_server(Bare(), server)
    api_grpc.add_ConsumerServiceServicer_to_server(BareConsumer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"ready {port}", flush=True)
    await server.wait_for_termination()


def start_bare() -> tuple[subprocess.Popen[str], int]:
    """The bare server in its own process; returns it and its port."""
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve-bare"],
        stdout=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert server.stdout is not None
    return server, int(server.stdout.readline().split()[1])


def run_bare(payload: bytes, n: dict[str, int], repeats: int) -> list[Result]:
    server, port = start_bare()
    try:

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


# ------------------------------------ broker CPU per delivered message vs one bare grpc.aio unary call


@dataclass
class CpuRound:
    """One round: the pipeline through the broker, then the same number of bare unary calls."""

    messages: int
    pipeline_s: float
    broker_cpu_s: float
    bare_s: float
    bare_cpu_s: float
    bare_pipeline_s: float
    bare_pipeline_cpu_s: float
    driver_cpu_s: float
    before_s: float | None = None
    before_cpu_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        before: dict[str, Any] = {}
        if self.before_s is not None and self.before_cpu_s is not None:
            before = {
                "before_pipeline_msgs_per_s": round(self.messages / self.before_s),
                "before_broker_cpu_us_per_message": round(self.before_cpu_s / self.messages * 1e6, 1),
            }
        return {
            **before,
            "bare_pipeline_msgs_per_s": round(self.messages / self.bare_pipeline_s),
            "bare_pipeline_cpu_us_per_message": round(self.bare_pipeline_cpu_s / self.messages * 1e6, 1),
            "driver_cpu_us_per_message": round(self.driver_cpu_s / self.messages * 1e6, 1),
            "messages": self.messages,
            "pipeline_msgs_per_s": round(self.messages / self.pipeline_s),
            "broker_cpu_us_per_message": round(self.broker_cpu_s / self.messages * 1e6, 1),
            "bare_calls_per_s": round(self.messages / self.bare_s),
            "bare_cpu_us_per_call": round(self.bare_cpu_s / self.messages * 1e6, 1),
        }


async def cpu_rounds(
    url: str,
    broker_pid: int,
    bare_port: int,
    bare_pid: int,
    payload: bytes,
    count: int,
    repeats: int,
    before: tuple[str, int] | None = None,
) -> list[CpuRound]:
    """Alternate pipeline rounds (broker) and bare-call rounds (bare server), so both see the same load.

    Broker CPU per delivered message = the broker process's CPU time during a pipeline round / messages
    (each one sent, dispatched on the stream and acked); bare CPU per call = the bare server process's CPU
    time during ``count`` unary calls at the same concurrency / ``count``. ``before``: (url, pid) of the
    broker built from the older sources, measured the same way in every round.
    """
    broker = AioBench(url, payload)
    bare = AioBench(f"http://127.0.0.1:{bare_port}", payload)
    old = AioBench(before[0], payload) if before is not None else None
    await broker.pipeline(300)  # warm-up
    await bare.send_concurrent(300, PIPELINE_IN_FLIGHT)
    await bare.pipeline(300)
    if old is not None:
        await old.pipeline(300)
    rounds = []
    for _ in range(repeats):
        before_s = before_cpu = None
        if old is not None and before is not None:
            cpu = process_cpu_s(before[1])
            before_s = await old.pipeline(count)
            before_cpu = process_cpu_s(before[1]) - cpu
        cpu, driver_cpu = process_cpu_s(broker_pid), process_cpu_s(os.getpid())
        pipeline_s = await broker.pipeline(count)
        broker_cpu = process_cpu_s(broker_pid) - cpu
        driver_cpu = process_cpu_s(os.getpid()) - driver_cpu
        cpu = process_cpu_s(bare_pid)
        bare_s = await bare.send_concurrent(count, PIPELINE_IN_FLIGHT)
        bare_cpu = process_cpu_s(bare_pid) - cpu
        cpu = process_cpu_s(bare_pid)
        bare_pipeline_s = await bare.pipeline(count)
        bare_pipeline_cpu = process_cpu_s(bare_pid) - cpu
        rounds.append(
            CpuRound(
                count,
                pipeline_s,
                broker_cpu,
                bare_s,
                bare_cpu,
                bare_pipeline_s,
                bare_pipeline_cpu,
                driver_cpu,
                before_s,
                before_cpu,
            )
        )
        print(f"  cpu round: {rounds[-1].as_json()}", file=sys.stderr, flush=True)
    await broker.close()
    await bare.close()
    if old is not None:
        await old.close()
    return rounds


#: py-spy sampling mode: native frames (the grpc Cython/C-core calls, else invisible as one Python line).
PROFILE_MODE = os.environ.get("BENCH_PROFILE_MODE", "--native").split()


def start_profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (a dev dependency) sampling ``pid`` into ``out`` (collapsed stacks) until terminated."""
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "250", *PROFILE_MODE]
    return subprocess.Popen(
        [*command, "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def profile_top(collapsed: Path, limit: int = 15) -> list[dict[str, Any]]:
    """The functions with the most samples in a py-spy collapsed-stack file: ``own`` counts the samples
    where the function was running itself, ``total`` those where it was anywhere on the stack."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_short_frame(f) for f in stack.split(";") if f]
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + count
    ranked = sorted(own, key=lambda f: own[f], reverse=True)[:limit]
    return [
        {
            "function": f,
            "own_pct": round(100 * own[f] / samples, 1),
            "total_pct": round(100 * total[f] / samples, 1),
        }
        for f in ranked
    ]


def _short_frame(frame: str) -> str:
    """``send (danube_embedded_broker/core.py:290)`` -> ``send (core.py)``; the thread name frames kept."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return f"{name} ({file})" if file else name


def start_before_broker(commit: str, data_dir: Path) -> tuple[BrokerProcess | None, str | None]:
    """The broker as of ``commit`` (its sources from ``git archive``, the rest of the workspace as is) in
    its own process, or ``(None, None)`` when that is not possible (no git, unknown commit, 'none', or it
    does not start with today's generated stubs): then the recorded figure stands in for it."""
    if commit.lower() == "none":
        return None, None
    src = data_dir / f"before-{commit}"
    try:
        src.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(BENCH_DIR.parent), "archive", commit, "packages/embedded-broker/src"],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
        broker = BrokerProcess(
            data_dir / "before-data",
            args=["--log-level", "WARNING"],
            env={"PYTHONPATH": str(src / "packages" / "embedded-broker" / "src")},
        )
        broker.start()
    except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
        print(f"  no before/after pair ({commit}: {exc}); using the recorded figure", file=sys.stderr)
        return None, None
    print(f"  broker as of {commit} at {broker.url} (own process)", file=sys.stderr)
    return broker, commit


def cpu_summary(rounds: list[CpuRound], before_commit: str | None) -> dict[str, Any]:
    per_round = [r.as_json() for r in rounds]

    def median(key: str) -> float:
        return float(statistics.median(r[key] for r in per_round))

    broker_us, bare_us = median("broker_cpu_us_per_message"), median("bare_cpu_us_per_call")
    before = dict(PIPELINE_BEFORE)
    if before_commit is not None and "before_pipeline_msgs_per_s" in per_round[0]:
        before = {
            "msgs_per_s": median("before_pipeline_msgs_per_s"),
            "broker_cpu_us_per_message": median("before_broker_cpu_us_per_message"),
            "measured": f"same run, broker at {before_commit[:7]}",
            "earlier_figure": PIPELINE_BEFORE,
        }
    return {
        "bare_pipeline_msgs_per_s_median": median("bare_pipeline_msgs_per_s"),
        "bare_pipeline_cpu_us_per_message_median": median("bare_pipeline_cpu_us_per_message"),
        "driver_cpu_us_per_message_median": median("driver_cpu_us_per_message"),
        "rounds": per_round,
        "in_flight": PIPELINE_IN_FLIGHT,
        "pipeline_msgs_per_s_median": median("pipeline_msgs_per_s"),
        "broker_cpu_us_per_message_median": broker_us,
        "bare_cpu_us_per_call_median": bare_us,
        "cpu_ratio_broker_over_bare": round(broker_us / bare_us, 2),
        "cpu_ratio_goal": CPU_RATIO_GOAL,
        "pipeline_before": before,
        "pipeline_ratio_vs_before": round(median("pipeline_msgs_per_s") / before["msgs_per_s"], 2),
        "pipeline_ratio_goal": PIPELINE_RATIO_GOAL,
    }


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
    parser.add_argument(
        "--cpu-only",
        action="store_true",
        help="only the pipeline / CPU-per-message rounds (not for make bench)",
    )
    parser.add_argument("--broker-args", default="", help="extra danube-embedded-broker arguments")
    parser.add_argument(
        "--before-commit", default=BEFORE_COMMIT,
        help="also measure the pipeline on the broker of this commit (git archive of its "
        "packages/embedded-broker/src), alternating rounds; 'none' to skip (the recorded figure is used)",
    )  # fmt: skip
    parser.add_argument(
        "--broker-src", type=Path, default=None,
        help="run the broker from this source directory (e.g. an older commit's "
        "packages/embedded-broker/src, for a before/after comparison on the same machine)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="FILE",
        help="sample the broker with py-spy during the pipeline rounds: collapsed stacks into FILE, the top "
        "functions into the results",
    )  # fmt: skip
    args = parser.parse_args()
    if args.serve_bare:
        asyncio.run(serve_bare())
        return
    n = {
        k: max(100, int(v * args.scale))
        for k, v in {"seq": 2000, "conc": 5000, "recv": 3000, "pipe": 5000}.items()
    }
    payload = b"x" * args.payload_bytes

    load_before = os.getloadavg()[0]  # the machine may be shared: record how busy it was
    with tempfile.TemporaryDirectory(prefix="broker-bench-") as data_dir:
        env = {"PYTHONPATH": str(args.broker_src.resolve())} if args.broker_src else None
        broker = BrokerProcess(Path(data_dir), port=0, args=args.broker_args.split(), env=env)
        url = broker.start()
        assert broker.pid is not None
        results: list[Result] = []
        try:
            print(f"embedded broker at {url} (own process); payload {args.payload_bytes} B", file=sys.stderr)
            if not args.cpu_only:
                results = asyncio.run(run_aio(url, payload, n, args.repeats))
                results += run_sync(url, payload, n, args.repeats)
            bare, bare_port = start_bare()
            old, before_commit = start_before_broker(args.before_commit, Path(data_dir))
            before = (old.url, old.pid) if old is not None and old.pid is not None else None
            profiler = start_profile(broker.pid, args.profile) if args.profile else None
            try:
                rounds = asyncio.run(
                    cpu_rounds(
                        url, broker.pid, bare_port, bare.pid, payload, n["pipe"], max(3, args.repeats), before
                    )
                )
            finally:
                bare.terminate()
                bare.wait()
                if old is not None:
                    old.stop()
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    profiler.wait()
        finally:
            broker.stop()
    if not args.cpu_only:
        results += run_bare(payload, n, args.repeats)
    cpu = cpu_summary(rounds, before_commit)
    if args.profile:
        cpu["profile_top"] = profile_top(args.profile)
        for row in cpu["profile_top"]:
            print(f"  {row['own_pct']:5.1f}% own {row['total_pct']:5.1f}% total  {row['function']}")

    info = machine()
    info["load_average_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(f"\nEmbedded broker, raw stubs - {info['cpu']}, {info['cores']} cores, Python {info['python']}")
    print(table(results))
    print(
        f"\npipeline ({PIPELINE_IN_FLIGHT} sends in flight, one stream receiving and acking): "
        f"{cpu['pipeline_msgs_per_s_median']:.0f} msg/s, {cpu['pipeline_ratio_vs_before']:.2f}x before "
        f"(goal >= {PIPELINE_RATIO_GOAL}x)\nbroker CPU per delivered message "
        f"{cpu['broker_cpu_us_per_message_median']:.0f} us vs bare grpc.aio unary call "
        f"{cpu['bare_cpu_us_per_call_median']:.0f} us: {cpu['cpu_ratio_broker_over_bare']:.2f}x "
        f"(goal <= {CPU_RATIO_GOAL}x)"
    )
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
        "cpu_per_message": cpu,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
