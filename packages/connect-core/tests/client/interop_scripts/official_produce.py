"""Publish with the OFFICIAL danube-client (run in its own process: its stubs clash with ours).

usage: official_produce.py URL TOPIC COUNT [PARTITIONS]
Sends payloads ``official-<i>`` with attribute ``i`` (reliable dispatch, keys ``k<i>`` when partitioned),
prints ``sent <i>`` per message and ``done`` at the end.
"""

from __future__ import annotations

import asyncio
import sys

from danube import DanubeClientBuilder, DispatchStrategy


async def main(url: str, topic: str, count: int, partitions: int) -> None:
    client = await DanubeClientBuilder().service_url(url).build()
    builder = (
        client.new_producer()
        .with_topic(topic)
        .with_name("official-producer")
        .with_dispatch_strategy(DispatchStrategy.RELIABLE)
    )
    if partitions:
        builder = builder.with_partitions(partitions)
    producer = builder.build()
    await producer.create()
    for i in range(count):
        attributes = {"i": str(i)}
        if partitions:
            await producer.send_with_key(f"official-{i}".encode(), attributes, f"k{i}")
        else:
            await producer.send(f"official-{i}".encode(), attributes)
        print(f"sent {i}", flush=True)
    await producer.close()
    print("done", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], args[1], int(args[2]), int(args[3]) if len(args) > 3 else 0))
