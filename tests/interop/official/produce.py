"""Publish messages with the official danube-client's Producer.

    python produce.py --url http://127.0.0.1:6650 --topic /default/t --count 100 [--partitions 3]
        [--reliable] [--schema-subject S [--schema-version V]] [--payload-format text|json]

Events: `ready` (producer created; schema_id/version it resolved), then `done` with `sent` and the
broker's request ids. Payloads are `<prefix><i>` (text) or `{"i": i, "prefix": ...}` (json), i = 0..count-1.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from _common import base_parser, build_client, close_client, emit, run
from danube import DispatchStrategy


def payload(args: argparse.Namespace, i: int) -> bytes:
    if args.payload_format == "json":
        return json.dumps({"i": i, "prefix": args.prefix}).encode()
    return f"{args.prefix}{i}".encode()


async def main(args: argparse.Namespace) -> None:
    client = await build_client(args.url)
    builder = (
        client.new_producer()
        .with_topic(args.topic)
        .with_name(args.name)
        .with_dispatch_strategy(DispatchStrategy.RELIABLE if args.reliable else DispatchStrategy.NON_RELIABLE)
    )
    if args.partitions:
        builder = builder.with_partitions(args.partitions)
    if args.schema_subject and args.schema_version:
        builder = builder.with_schema_version(args.schema_subject, args.schema_version)
    elif args.schema_subject:
        builder = builder.with_schema_subject(args.schema_subject)
    producer = builder.build()
    # Producer.create() registers every partition (`<topic>-part-<i>`, producer `<name>-<i>`).
    await producer.create()
    # The schema id/version the client resolved at create() and stamps on each message (private state).
    parts: list[Any] = producer._producers
    emit(
        "ready",
        topics=[tp.topic for tp in parts],
        producer_ids=[tp.producer_id for tp in parts],
        schema_id=parts[0].schema_id,
        schema_version=parts[0].schema_version,
    )
    attributes = dict(kv.split("=", 1) for kv in args.attr)
    request_ids = []
    for i in range(args.count):
        if args.keys:
            rid = await producer.send_with_key(payload(args, i), dict(attributes), f"key-{i % args.keys}")
        else:
            # A fresh dict each time: the client passes it straight into the StreamMessage.
            rid = await producer.send(payload(args, i), dict(attributes))
        request_ids.append(rid)
    await producer.close()
    await close_client(client)
    emit("done", sent=len(request_ids), request_ids=request_ids)


if __name__ == "__main__":
    parser = base_parser(__doc__ or "")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--name", default="official-producer")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=0, help="0 = non-partitioned topic")
    parser.add_argument("--reliable", action="store_true", help="Reliable dispatch (default NonReliable)")
    parser.add_argument("--schema-subject", default="")
    parser.add_argument("--schema-version", type=int, default=0, help="pin this version (0 = latest)")
    parser.add_argument("--payload-format", choices=["text", "json"], default="text")
    parser.add_argument("--prefix", default="m-")
    parser.add_argument("--attr", action="append", default=[], help="attribute k=v (repeatable)")
    parser.add_argument("--keys", type=int, default=0, help="send with routing keys key-0..key-(N-1)")
    run(main, parser.parse_args())
