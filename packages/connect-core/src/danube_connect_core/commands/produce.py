"""`danube-connect produce`: publish messages to a topic (manual checks and scripts).

Exit 0 when every message was acknowledged by the broker, 1 on the first failure (the error on stderr),
2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ._broker_args import add_service_url, client_options

NAME = "produce"
HELP = "publish messages to a Danube topic"


def configure(parser: argparse.ArgumentParser) -> None:
    add_service_url(parser)
    parser.add_argument("--topic", required=True, help="topic, /namespace/name")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--message", help="payload text (typically JSON)")
    source.add_argument("--file", help="file whose bytes are the payload ('-' reads stdin)")
    parser.add_argument("--count", type=int, default=1, help="send the payload N times (default 1)")
    parser.add_argument("--partitions", type=int, default=None, help="partitioned topic with N partitions")
    parser.add_argument("--reliable", action="store_true", help="reliable (durable) dispatch")
    parser.add_argument("--key", help="routing key (partition choice and Key-Shared routing)")
    parser.add_argument(
        "--attribute", action="append", default=[], metavar="K=V", help="message attribute (repeatable)"
    )
    parser.add_argument("--producer-name", default="danube-connect-cli", help="producer name")
    parser.add_argument("--max-in-flight", type=int, default=1, help="per-partition in-flight window")
    parser.add_argument("--max-retries", type=int, default=5, help="retries per message (default 5)")
    parser.add_argument("--quiet", action="store_true", help="no per-message output")


def run(args: argparse.Namespace) -> int:
    try:
        payload = _payload(args)
        attributes = _attributes(args.attribute)
        if args.count < 1:
            raise ValueError("--count must be >= 1")
        options = client_options(args, args.max_retries)
    except (OSError, ValueError) as err:
        print(f"danube-connect produce: {err}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_produce(args, payload, attributes, options))
    except KeyboardInterrupt:
        return 130


def _payload(args: argparse.Namespace) -> bytes:
    if args.message is not None:
        message: str = args.message
        return message.encode("utf-8")
    if args.file == "-":
        return sys.stdin.buffer.read()
    with open(args.file, "rb") as handle:
        return handle.read()


def _attributes(pairs: list[str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--attribute expects K=V, got {pair!r}")
        attributes[key] = value
    return attributes


async def _produce(
    args: argparse.Namespace, payload: bytes, attributes: dict[str, str], options: object
) -> int:
    from ..client import ClientOptions, DanubeClient, DanubeError

    assert isinstance(options, ClientOptions)
    async with DanubeClient(args.service_url, options) as client:
        try:
            producer = await client.create_producer(
                args.topic,
                args.producer_name,
                partitions=args.partitions,
                reliable=args.reliable,
                max_in_flight=args.max_in_flight,
            )
            sends = [
                producer.send(payload, attributes=attributes or None, key=args.key) for _ in range(args.count)
            ]
            for mid in await asyncio.gather(*sends):
                if not args.quiet:
                    print(f"sent {mid.topic} partition={mid.partition} seq={mid.offset}")
        except DanubeError as err:
            print(f"danube-connect produce: {err}", file=sys.stderr)
            return 1
    print(f"produced {args.count} message(s) to {args.topic}", file=sys.stderr)
    return 0
