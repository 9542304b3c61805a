"""A broker restart under a live producer and consumer: our client re-creates, re-subscribes, redelivers.

Runs on the embedded default (the suite restarts its own process) and on an external broker when
DANUBE_CONFORMANCE_RESTART_CMD is set.
"""

from __future__ import annotations

import asyncio

import pytest
from conformance_support import WAIT_S, Target, receive, receive_n


@pytest.fixture
def restart(target: Target) -> object:
    if target.restart is None:
        pytest.skip("no DANUBE_CONFORMANCE_RESTART_CMD for this broker")
    return target.restart


async def test_producer_and_consumer_survive_a_broker_restart(target: Target, restart: object) -> None:
    topic = target.topic("restart")
    assert target.restart is not None
    async with target.client(max_retries=30) as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        consumer = await client.subscribe(topic, "s", consumer_name="c")
        for i in range(5):
            await producer.send(f"before{i}".encode())
        before = await receive_n(consumer, 5)
        await producer.send(b"unacked")
        unacked = await receive(consumer)
        assert unacked.payload == b"unacked"

        await asyncio.sleep(target.settle_s)  # external Danube: let the WAL flush (see conformance_support)
        await asyncio.to_thread(target.restart)

        # the producer's next sends ride out the restart (re-created on NOT_FOUND / after UNAVAILABLE)
        for i in range(5):
            await producer.send(f"after{i}".encode())
        seen: list[bytes] = []
        while not {f"after{i}".encode() for i in range(5)} <= set(seen):
            message = await receive(consumer, WAIT_S * 2)
            seen.append(message.payload)
            assert await consumer.ack(message)
    assert [m.payload for m in before] == [f"before{i}".encode() for i in range(5)]
    # the message delivered but not acked before the restart comes again, before the new ones
    assert b"unacked" in seen
    assert seen.index(b"unacked") < seen.index(b"after0")
    assert not {f"before{i}".encode() for i in range(5)} & set(seen)
