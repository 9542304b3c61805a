"""P4's floor: the webhook -> broker -> SurrealDB pipeline built from raw stubs, as two processes.

Not a test, not part of any connector; bench/e2e_bench.py drives it on the same broker as the real
pipeline, at the same offered rates:

    python bench/raw_e2e.py consume --broker URL --topic T --store DIR --batch 50 --flush-ms 1000 --status F
    python bench/raw_e2e.py produce --broker URL --topic T --rate R --duration S --step K --out F

- ``consume`` (runs for the whole floor run, like the sink): creates the 4-partition topic and its
  subscription, then drains it with the generated gRPC stubs (``raw_stub.drain``: batches cut as the sink's
  runtime cuts them: ``--batch``, the broker's window of 10, ``--flush-ms``, 50 ms idle), writes each batch
  with one ``INSERT IGNORE`` into its own SurrealDB ``surrealkv`` store (the decoded payloads, record ids
  from the message positions, a ``stored_at`` default as the sink's table has in the benchmark), then acks
  it. After every batch it writes the total stored and the wall time to ``--status`` (JSON, replaced
  atomically).
- ``produce`` (one process per step, like the load generator): one raw-stub producer per partition,
  open loop: message ``i`` is due at ``start + i / rate`` and sent at once on its own task (round robin
  over the partitions, reliable dispatch), the payment payloads of bench/e2e_load.py. Writes a JSON report:
  requests, acknowledged, errors, offered/s and the step's scheduled end (wall clock, ns).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import orjson
from danube_connect_core.proto import DanubeApi_pb2 as api
from danube_connect_core.proto import DanubeApi_pb2_grpc as _api_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raw_stub

api_grpc: Any = _api_grpc
PARTITIONS = 4
TABLE = "floor_payments"
EVENTS = ("payment.succeeded", "payment.failed", "payment.refunded", "payment.canceled")


async def consume(args: argparse.Namespace) -> None:
    from danube_connect_core.client import DanubeClient
    from danube_connect_core.testing import produce as produce_records
    from surrealdb import AsyncSurreal, RecordID

    await produce_records(args.broker, args.topic, [], partitions=PARTITIONS)  # creates the topic
    client = DanubeClient(args.broker)
    setup = await client.subscribe(args.topic, "floor", consumer_name="floor-setup")
    await setup.close()
    await client.close()
    db: Any = AsyncSurreal(f"surrealkv://{args.store}")
    await db.connect()
    await db.use("default", "default")
    await db.query(f"DEFINE TABLE {TABLE} SCHEMALESS; DEFINE FIELD stored_at ON {TABLE} DEFAULT time::now();")
    stored = 0
    status = Path(args.status)

    def report() -> None:
        tmp = status.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stored": stored, "wall_ns": time.time_ns()}))
        os.replace(tmp, status)

    async def write(messages: Any) -> None:
        nonlocal stored
        rows = []
        for m in messages:
            row = orjson.loads(m.payload)
            row["id"] = RecordID(TABLE, f"{m.msg_id.topic_name}:{m.msg_id.topic_offset}")
            rows.append(row)
        await db.query(f"INSERT IGNORE INTO {TABLE} $rows RETURN NONE", {"rows": rows})
        stored += len(rows)
        report()

    report()
    try:
        await raw_stub.drain(  # cut as the sink's runtime: its flush interval, idle 50 ms, window 10
            args.broker,
            args.topic,
            "floor",
            PARTITIONS,
            1 << 62,
            args.batch,
            write,
            idle_s=0.05,
            max_age_s=args.flush_ms / 1000,
            window=10,
        )
    finally:
        await db.close()


def payload(step: int, seq: int, scheduled_us: int) -> bytes:
    return orjson.dumps(
        {
            "event": EVENTS[seq % 4],
            "amount": 1000 + seq,
            "currency": "USD",
            "timestamp": scheduled_us,
            "customer": f"cus_{seq % 97}",
            "bench_step": step,
            "bench_seq": seq,
        }
    )


async def produce(args: argparse.Namespace) -> None:
    cpu_start = time.process_time()  # the step's own CPU, as bench/e2e_load.py reports it
    ids = itertools.count(1)
    channel = grpc.aio.insecure_channel(args.broker.removeprefix("http://"))
    producers = api_grpc.ProducerServiceStub(channel)
    names = [f"{args.topic}-part-{i}" for i in range(PARTITIONS)]
    pids = []
    for name in names:
        response = await producers.CreateProducer(
            api.ProducerRequest(
                request_id=next(ids),
                producer_name=f"floor-{args.step}-{name}",
                topic_name=name,
                dispatch_strategy=api.Reliable,
            )
        )
        pids.append(int(response.producer_id))
    total = int(args.rate * args.duration)
    acked = errors = 0
    tasks: set[asyncio.Task[None]] = set()

    async def send(seq: int, scheduled_us: int) -> None:
        nonlocal acked, errors
        k = seq % PARTITIONS
        message = api.StreamMessage(
            request_id=next(ids),
            msg_id=api.MsgID(producer_id=pids[k], topic_name=names[k], broker_addr=args.broker),
            payload=payload(args.step, seq, scheduled_us),
            publish_time=scheduled_us // 1000,
            producer_name=f"floor-{args.step}-{names[k]}",
        )
        try:
            await producers.SendMessage(message, timeout=60)
            acked += 1
        except grpc.aio.AioRpcError:
            errors += 1

    start = time.perf_counter()
    start_wall_ns = time.time_ns()
    late = 0.0
    for seq in range(total):
        due = start + seq / args.rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            late = max(late, -wait)
        task = asyncio.create_task(send(seq, start_wall_ns // 1000 + int(seq / args.rate * 1e6)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    offered = total / max(time.perf_counter() - start, 1e-9)
    await asyncio.gather(*tasks)
    await channel.close()
    Path(args.out).write_text(  # noqa: ASYNC240 (once, after the step)
        json.dumps(
            {
                "rate": args.rate,
                "step": args.step,
                "requests": total,
                "acked": acked,
                "errors": errors,
                "offered_per_s": offered,
                "generator_late_max_s": late,
                "end_wall_ns": start_wall_ns + int(args.duration * 1e9),
                "cpu_s": time.process_time() - cpu_start,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    c = sub.add_parser("consume")
    c.add_argument("--broker", required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--store", required=True)
    c.add_argument("--batch", type=int, default=50)
    c.add_argument("--flush-ms", type=int, default=1000)
    c.add_argument("--status", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--broker", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--step", type=int, required=True)
    p.add_argument("--out", required=True)
    args = parser.parse_args()
    asyncio.run(consume(args) if args.role == "consume" else produce(args))


if __name__ == "__main__":
    main()
