"""Consume with the OFFICIAL danube-client (run in its own process: its stubs clash with ours).

usage: official_consume.py URL TOPIC SUBSCRIPTION COUNT
Prints ``subscribed`` once subscribed, then one JSON line per message (payload, attributes, topic,
offset, routing_key, schema_id), acks each, and exits after COUNT messages.
"""

from __future__ import annotations

import asyncio
import json
import sys

from danube import DanubeClientBuilder, SubType


async def main(url: str, topic: str, subscription: str, count: int) -> None:
    client = await DanubeClientBuilder().service_url(url).build()
    consumer = (
        client.new_consumer()
        .with_topic(topic)
        .with_consumer_name("official-consumer")
        .with_subscription(subscription)
        .with_subscription_type(SubType.SHARED)
        .build()
    )
    await consumer.subscribe()
    print("subscribed", flush=True)
    queue = await consumer.receive()
    for _ in range(count):
        msg = await queue.get()
        record = {
            "payload": msg.payload.decode(),
            "attributes": dict(msg.attributes),
            "topic": msg.msg_id.topic_name,
            "offset": msg.msg_id.topic_offset,
            "routing_key": msg.routing_key if msg.HasField("routing_key") else None,
            "schema_id": msg.schema_id if msg.HasField("schema_id") else None,
        }
        print(json.dumps(record), flush=True)
        await consumer.ack(msg)
    await consumer.close()


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], int(a[3])))
