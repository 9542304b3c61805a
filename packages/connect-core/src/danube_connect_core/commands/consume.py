"""`danube-connect consume`: print messages of a subscription, acknowledging each after it is printed.

With ``--count N`` it exits 0 after N messages; otherwise it runs until SIGINT/SIGTERM (exit 0).
``--output jsonl`` (default) prints one JSON object per line: payload (UTF-8 text, or base64 with
``"payload_encoding": "base64"`` when not UTF-8), attributes, topic, partition_topic, partition, offset,
publish_time, producer_name, routing_key. ``--output text`` prints the payload only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import signal
import sys
from typing import Any

from danube_connect_core import exact_json

from ._broker_args import add_service_url, client_options

NAME = "consume"
HELP = "receive (and acknowledge) messages from a Danube topic"

_TYPES = {"shared": "SHARED", "exclusive": "EXCLUSIVE", "failover": "FAILOVER", "key_shared": "KEY_SHARED"}


def configure(parser: argparse.ArgumentParser) -> None:
    add_service_url(parser)
    parser.add_argument("--topic", required=True, help="topic, /namespace/name (all partitions are read)")
    parser.add_argument("--subscription", required=True, help="subscription name")
    parser.add_argument("--type", choices=sorted(_TYPES), default="shared", help="subscription type")
    parser.add_argument("--consumer-name", default="danube-connect-cli", help="consumer name")
    parser.add_argument("--count", type=int, default=None, help="exit 0 after N messages")
    parser.add_argument("--output", choices=("jsonl", "text"), default="jsonl", help="output format")
    parser.add_argument("--no-ack", action="store_true", help="do not acknowledge messages")


def run(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        print("danube-connect consume: --count must be >= 1", file=sys.stderr)
        return 2
    try:
        options = client_options(args)
    except ValueError as err:
        print(f"danube-connect consume: {err}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_consume(args, options))
    except KeyboardInterrupt:
        return 0


def message_record(msg: Any) -> dict[str, Any]:
    """The JSON object printed for one ReceivedMessage."""
    record: dict[str, Any] = {}
    try:
        record["payload"] = msg.payload.decode("utf-8")
    except UnicodeDecodeError:
        record["payload"] = base64.b64encode(msg.payload).decode("ascii")
        record["payload_encoding"] = "base64"
    record.update(
        attributes=msg.attributes,
        topic=msg.topic,
        partition_topic=msg.partition_topic,
        partition=msg.partition,
        offset=msg.offset,
        publish_time=msg.publish_time,
        producer_name=msg.producer_name,
        routing_key=msg.routing_key,
    )
    return record


async def _consume(args: argparse.Namespace, options: object) -> int:
    from ..client import ClientOptions, DanubeClient, DanubeError, SubscriptionType

    assert isinstance(options, ClientOptions)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    out = sys.stdout.buffer
    received = 0
    async with DanubeClient(args.service_url, options) as client:
        try:
            consumer = await client.subscribe(
                args.topic,
                args.subscription,
                consumer_name=args.consumer_name,
                subscription_type=SubscriptionType[_TYPES[args.type]],
            )
        except DanubeError as err:
            print(f"danube-connect consume: {err}", file=sys.stderr)
            return 1
        stopper = asyncio.create_task(stop.wait())
        try:
            while args.count is None or received < args.count:
                getter = asyncio.create_task(consumer.receive())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    await asyncio.gather(getter, return_exceptions=True)
                    break
                msg = getter.result()
                if args.output == "jsonl":
                    out.write(exact_json.dumps(message_record(msg)) + b"\n")
                else:
                    out.write(msg.payload + b"\n")
                out.flush()
                if not args.no_ack:
                    await consumer.ack(msg)
                received += 1
        finally:
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)
    return 0
