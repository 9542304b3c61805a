"""Receive (and ack or nack) messages with the official danube-client's Consumer.

    python consume.py --url http://127.0.0.1:6650 --topic /default/t --subscription s --expect 100
        [--sub-type shared] [--consumers 2] [--nack-first --nack-delay-ms 0] [--no-ack] [--linger 0.5]

The topic must exist (Subscribe never creates one). Events: `subscribed` once every consumer is
subscribed and receiving (produce only after it: a new subscription starts at the latest offset),
`message` per delivery (consumer index, payload, topic, offset, schema fields...), `nacked` per nack,
then `done` after `--expect` distinct payloads were acked (received, with --no-ack) and `--linger`
more seconds to catch duplicates. Several consumers (`--consumers N`) share one subscription, named
`<name>-0..N-1`.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from _common import base_parser, build_client, close_client, emit, message_fields, run
from danube import SubType


async def main(args: argparse.Namespace) -> None:
    client = await build_client(args.url)
    consumers = []
    for k in range(args.consumers):
        name = args.name if args.consumers == 1 else f"{args.name}-{k}"
        consumer = (
            client.new_consumer()
            .with_topic(args.topic)
            .with_consumer_name(name)
            .with_subscription(args.subscription)
            .with_subscription_type(SubType[args.sub_type.upper()])
            .build()
        )
        # subscribe() asks TopicPartitions and subscribes to each partition it lists.
        # (0.5.0 does not filter that list: a real broker's prefix match can add `/ns/t_v2` for `/ns/t`;
        # the tests use topic names that are not prefixes of each other.)
        await consumer.subscribe()
        consumers.append(consumer)
    queues = [await c.receive() for c in consumers]
    emit("subscribed", partitions=sorted(consumers[0]._consumers))

    nacked: set[str] = set()
    completed: set[str] = set()
    counts = {"deliveries": 0, "acks": 0, "nacks": 0}
    finished = asyncio.Event()
    if args.expect <= 0:
        finished.set()

    async def work(index: int, consumer: Any, queue: asyncio.Queue[Any]) -> None:
        while True:
            msg = await queue.get()
            fields = message_fields(msg)
            payload = fields["payload"]
            counts["deliveries"] += 1
            emit("message", consumer=index, **fields)
            if args.nack_first and payload not in nacked:
                nacked.add(payload)
                await consumer.nack(msg, delay_ms=args.nack_delay_ms, reason="interop test nack")
                counts["nacks"] += 1
                emit(
                    "nacked", consumer=index, payload=payload, topic=fields["topic"], offset=fields["offset"]
                )
                continue
            if not args.no_ack:
                await consumer.ack(msg)
                counts["acks"] += 1
            completed.add(payload)
            if len(completed) >= args.expect:
                finished.set()

    workers = [
        asyncio.create_task(work(k, c, q)) for k, (c, q) in enumerate(zip(consumers, queues, strict=True))
    ]
    waiter = asyncio.create_task(finished.wait())
    await asyncio.wait([waiter, *workers], return_when=asyncio.FIRST_COMPLETED)
    for w in workers:
        if w.done():  # a worker only ends by raising (ack/nack failed)
            waiter.cancel()
            w.result()
    await asyncio.sleep(args.linger)  # late duplicates would show up here
    for w in workers:
        if w.done():
            w.result()
        w.cancel()
    # Consumer.close() cancels the receive tasks; messages still in its queue are simply dropped
    # (neither acked nor nacked: the broker redelivers them after the ack timeout).
    for c in consumers:
        await c.close()
    await close_client(client)
    emit("done", distinct=len(completed), **counts)


if __name__ == "__main__":
    parser = base_parser(__doc__ or "")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--subscription", required=True)
    parser.add_argument(
        "--sub-type", choices=["exclusive", "shared", "failover", "key_shared"], default="shared"
    )
    parser.add_argument("--name", default="official-consumer")
    parser.add_argument("--consumers", type=int, default=1)
    parser.add_argument("--expect", type=int, default=0, help="stop after this many distinct payloads")
    parser.add_argument("--linger", type=float, default=0.5, help="seconds to keep receiving after --expect")
    parser.add_argument("--nack-first", action="store_true", help="nack every payload's first delivery")
    parser.add_argument("--nack-delay-ms", type=int, default=None)
    parser.add_argument("--no-ack", action="store_true")
    run(main, parser.parse_args())
