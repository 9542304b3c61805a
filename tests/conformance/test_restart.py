"""A broker restart under a live producer and consumer: our client re-creates, re-subscribes, redelivers.

Runs on the embedded default (the suite restarts its own process) and on an external broker when
DANUBE_CONFORMANCE_RESTART_CMD is set.
"""

from __future__ import annotations

import asyncio

import pytest

from .conformance_support import WAIT_S, Target, receive, receive_n


@pytest.fixture
def restart(target: Target) -> None:
    if target.restart is None:
        pytest.skip("no DANUBE_CONFORMANCE_RESTART_CMD for this broker")


async def _drain_until(consumer: object, wanted: set[bytes]) -> list[bytes]:
    from danube_connect_core.client import Consumer

    assert isinstance(consumer, Consumer)
    seen: list[bytes] = []
    while not wanted <= set(seen):
        message = await receive(consumer, WAIT_S * 2)
        seen.append(message.payload)
        assert await consumer.ack(message)
    return seen


async def test_producer_and_new_subscription_work_after_a_broker_restart(
    target: Target, restart: None
) -> None:
    """Our producer rides out the restart (re-created after UNAVAILABLE / NOT_FOUND) without an error."""
    topic = target.topic("restart-new")
    assert target.restart is not None
    async with target.client(max_retries=30) as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        for i in range(3):
            await producer.send(f"before{i}".encode())
        await asyncio.sleep(target.settle_s)  # external Danube: let the WAL flush (see conformance_support)
        await asyncio.to_thread(target.restart)
        await producer.send(b"after0")  # through the restart: retried until the broker is back
        consumer = await client.subscribe(topic, "fresh", consumer_name="c")
        for i in range(1, 5):
            await producer.send(f"after{i}".encode())
        seen = await _drain_until(consumer, {f"after{i}".encode() for i in range(1, 5)})
    assert [p for p in seen if p.startswith(b"after")][-4:] == [f"after{i}".encode() for i in range(1, 5)]


async def test_existing_subscription_resumes_after_a_broker_restart(target: Target, restart: None) -> None:
    if not target.embedded:
        # Danube 0.15.1 (local WAL): after a restart the topic's offsets start again at 0, below the
        # cursor of an existing subscription, which then receives nothing new (seen in our runs; a
        # subscription created after the restart gets the new messages). docs/operations.md records it.
        pytest.skip("Danube 0.15.1 restarts a topic's offsets after a broker restart")
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

        await asyncio.to_thread(target.restart)

        for i in range(5):
            await producer.send(f"after{i}".encode())
        seen = await _drain_until(consumer, {f"after{i}".encode() for i in range(5)})
    assert [m.payload for m in before] == [f"before{i}".encode() for i in range(5)]
    # the message delivered but not acked before the restart comes again, before the new ones
    assert b"unacked" in seen
    assert seen.index(b"unacked") < seen.index(b"after0")
    assert not {f"before{i}".encode() for i in range(5)} & set(seen)
