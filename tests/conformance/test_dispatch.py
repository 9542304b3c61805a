"""Reliable and non-reliable producers, every subscription type, ack, nack, ack timeout, max unacked."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from danube_connect_core.client import Consumer, DanubeClient, NonRetryableError, Producer, SubscriptionType

from .conformance_support import WAIT_S, Target, nothing_within, receive, receive_n

EXCLUSIVE = SubscriptionType.EXCLUSIVE
FAILOVER = SubscriptionType.FAILOVER


async def test_reliable_producer_delivers_every_message_in_order(target: Target) -> None:
    topic = target.topic("reliable")
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        consumer = await client.subscribe(topic, "s", consumer_name="c")
        ids = [await producer.send(f"m{i}".encode(), attributes={"i": str(i)}) for i in range(50)]
        received = await receive_n(consumer, 50)
    assert [m.payload for m in received] == [f"m{i}".encode() for i in range(50)]
    assert [m.attributes["i"] for m in received] == [str(i) for i in range(50)]
    offsets = [m.offset for m in received]
    assert offsets == sorted(offsets) and len(set(offsets)) == 50
    assert [i.offset for i in ids] == sorted(i.offset for i in ids)
    assert all(m.producer_name == "p" and m.partition is None for m in received)


async def test_reliable_subscription_created_later_starts_at_the_latest_offset(target: Target) -> None:
    """Documented on DanubeClient.subscribe: subscribe before producing."""
    topic = target.topic("latest")
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        await producer.send(b"before")
        consumer = await client.subscribe(topic, "late", consumer_name="c")
        await producer.send(b"after")
        first = await receive(consumer)
    assert first.payload == b"after"


async def test_non_reliable_producer_delivers_to_a_connected_consumer(target: Target) -> None:
    topic = target.topic("nonrel")
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", reliable=False)
        consumer = await client.subscribe(topic, "s", consumer_name="c")
        await asyncio.sleep(1.0)  # let the stream register: non-reliable delivery has no backlog
        for i in range(20):
            await producer.send(f"n{i}".encode())
        received = await receive_n(consumer, 20)
    assert sorted(m.payload for m in received) == sorted(f"n{i}".encode() for i in range(20))


async def test_exclusive_subscription_refuses_a_second_consumer(target: Target) -> None:
    topic = target.topic("excl")
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        first = await client.subscribe(
            topic, "s", consumer_name="c1", subscription_type=SubscriptionType.EXCLUSIVE
        )
        with pytest.raises(NonRetryableError) as refused:
            await client.subscribe(
                topic, "s", consumer_name="c2", subscription_type=SubscriptionType.EXCLUSIVE
            )
        await producer.send(b"one")
        assert (await receive(first)).payload == b"one"
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED


async def test_shared_subscription_spreads_messages_over_consumers(target: Target) -> None:
    topic = target.topic("shared")
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        c1 = await client.subscribe(topic, "s", consumer_name="c1", subscription_type=SubscriptionType.SHARED)
        c2 = await client.subscribe(topic, "s", consumer_name="c2", subscription_type=SubscriptionType.SHARED)
        await asyncio.sleep(1.0)  # both streams open before the first message
        for i in range(40):
            await producer.send(f"m{i}".encode())
        got: dict[str, list[bytes]] = {"c1": [], "c2": []}

        async def drain(name: str, consumer_: Consumer) -> None:
            while sum(len(v) for v in got.values()) < 40:
                try:
                    message = await asyncio.wait_for(consumer_.receive(), 2.0)
                except TimeoutError:
                    continue
                got[name].append(message.payload)
                await consumer_.ack(message)

        await asyncio.wait_for(asyncio.gather(drain("c1", c1), drain("c2", c2)), WAIT_S)
    assert sorted(got["c1"] + got["c2"]) == sorted(f"m{i}".encode() for i in range(40))
    assert got["c1"] and got["c2"]


async def _failover_pair(target: Target, topic: str) -> tuple[DanubeClient, Producer, Consumer, Consumer]:
    """A producer and two Failover consumers; returns (client, producer, active, standby)."""
    client = target.client()
    producer = await client.create_producer(topic, "p", reliable=True)
    c1 = await client.subscribe(topic, "s", consumer_name="c1", subscription_type=FAILOVER)
    c2 = await client.subscribe(topic, "s", consumer_name="c2", subscription_type=FAILOVER)
    await asyncio.sleep(1.0)
    await producer.send(b"a0")
    tasks = {asyncio.create_task(c.receive()): c for c in (c1, c2)}
    done, pending = await asyncio.wait(tasks, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert len(done) == 1, "one failover consumer is active, the other waits"
    winner = done.pop()
    active = tasks[winner]
    assert winner.result().payload == b"a0"
    assert await active.ack(winner.result())
    return client, producer, active, c2 if active is c1 else c1


async def test_failover_subscription_delivers_to_one_consumer(target: Target) -> None:
    client, producer, active, standby = await _failover_pair(target, target.topic("failover"))
    async with client:
        for i in range(1, 10):
            await producer.send(f"a{i}".encode())
        rest = await receive_n(active, 9)
        assert [m.payload for m in rest] == [f"a{i}".encode() for i in range(1, 10)]
        assert await nothing_within(standby, 2.0)


async def test_failover_standby_takes_over_when_the_active_consumer_leaves(target: Target) -> None:
    if not target.embedded:
        # Danube 0.15.1: the reliable Failover dispatcher keeps the disconnected consumer as the active
        # one (it stops dispatching while that consumer is inactive), so the standby got nothing within
        # 60 s in our run. Recorded in docs/operations.md "Verified against Danube".
        pytest.skip("Danube 0.15.1 does not fail over when the active consumer's stream ends")
    client, producer, active, standby = await _failover_pair(target, target.topic("takeover"))
    async with client:
        await active.close()
        for i in range(5):
            await producer.send(f"b{i}".encode())
        after = await receive_n(standby, 5)
    assert [m.payload for m in after] == [f"b{i}".encode() for i in range(5)]


async def test_nack_redelivers_the_message(target: Target) -> None:
    topic = target.topic("nack")
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        consumer = await client.subscribe(topic, "s", consumer_name="c")
        await producer.send(b"again")
        first = await receive(consumer)
        assert await consumer.nack(first, delay_ms=1000, reason="conformance")
        second = await receive(consumer)
        assert second.payload == b"again"
        assert second.offset == first.offset
        assert await consumer.ack(second)
        await producer.send(b"next")
        assert (await receive(consumer)).payload == b"next"


async def test_unacked_message_is_redelivered_after_the_ack_timeout(target: Target) -> None:
    topic = target.topic("acktimeout")
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        consumer = await client.subscribe(topic, "s", consumer_name="c")
        await producer.send(b"late")
        first = await receive(consumer)
        again = await receive(consumer, wait_s=target.ack_timeout_s * 4 + WAIT_S)
        assert again.payload == b"late" and again.offset == first.offset
        assert await consumer.ack(again)


async def test_acked_message_is_not_redelivered(target: Target) -> None:
    topic = target.topic("acked")
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        consumer = await client.subscribe(topic, "s", consumer_name="c")
        await producer.send(b"once")
        assert await consumer.ack(await receive(consumer))
        assert await nothing_within(consumer, target.ack_timeout_s + 3.0)


async def test_max_unacked_messages_bounds_the_in_flight_window(target: Target) -> None:
    topic = target.topic("window")
    limit = target.max_unacked
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", reliable=True, max_in_flight=8)
        consumer = await client.subscribe(topic, "s", consumer_name="c")
        await asyncio.gather(*(producer.send(f"w{i}".encode()) for i in range(limit * 3)))
        held = await receive_n(consumer, limit, ack=False)
        # the window is full: nothing more until something is acked (well before the ack timeout)
        quiet = min(2.0, target.ack_timeout_s / 2)
        assert await nothing_within(consumer, quiet)
        assert await consumer.ack(held[0])
        more = await receive(consumer)
        assert more.payload not in {m.payload for m in held}


async def test_concurrent_sends_are_all_delivered(target: Target, request: pytest.FixtureRequest) -> None:
    """A producer window > 1 (sources default to 64) keeps several SendMessage calls on one topic at once.

    Danube 0.15.1's reliable dispatcher reads new messages from a broadcast channel; when a burst makes it
    lag ("broadcast error: channel lagged by N" in the broker log) those messages never reach the
    subscription (our runs: 266-303 of 500 delivered with a window of 16, all 500 with a window of 1).
    Expected to fail there until fixed.
    """
    if not target.embedded:
        reason = "Danube 0.15.1 skips messages appended concurrently (docs/operations.md)"
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))
    topic = target.topic("window16")
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", reliable=True, max_in_flight=16)
        consumer = await client.subscribe(topic, "s", consumer_name="c")
        await asyncio.gather(*(producer.send(f"c{i}".encode()) for i in range(300)))
        received = await receive_n(consumer, 300)
    assert sorted(m.payload for m in received) == sorted(f"c{i}".encode() for i in range(300))
