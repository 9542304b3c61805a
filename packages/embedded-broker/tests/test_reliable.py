"""Reliable dispatch: start at latest, in-flight window, acks, nacks, timeouts, poison policies, restart."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from danube_embedded_broker import EmbeddedBroker
from danube_embedded_broker.subscription import (
    STREAM_MESSAGE_SUBSCRIPTION_NAME,
    ReliableSubscription,
    encode_string_field,
)
from danube_embedded_broker.testing import StubClient, next_message
from danube_embedded_broker.wire import pb

Factory = Callable[..., Awaitable[EmbeddedBroker]]
SubType = pb.ConsumerRequest.SubscriptionType
T = "/default/r"


def subscription(broker: EmbeddedBroker, name: str, topic: str = T) -> ReliableSubscription:
    sub = broker.core.topics[topic].subscriptions[name]
    assert isinstance(sub, ReliableSubscription)
    return sub


async def until(predicate: Callable[[], bool], wait_s: float = 10.0) -> None:
    """Poll a broker-side condition (hang guard only, no timing assertion)."""

    async def poll() -> None:
        for _ in itertools.count():
            if predicate():
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), wait_s)


async def send_n(client: StubClient, pid: int, n: int, topic: str = T, start: int = 0, **kw: Any) -> None:
    for i in range(start, start + n):
        await client.send(pid, topic, str(i).encode(), **kw)


async def test_new_subscription_starts_at_latest(client: StubClient) -> None:
    pid = await client.create_producer(T)
    await send_n(client, pid, 3)
    call = await client.stream(await client.subscribe(T, "s"))
    await send_n(client, pid, 1, start=3)
    message = await next_message(call)
    assert message.payload == b"3" and message.msg_id.topic_offset == 3
    call.cancel()


async def test_in_flight_window_limits_unacked(broker_factory: Factory) -> None:
    broker = await broker_factory(max_unacked_messages=3)
    async with StubClient(broker.url) as client:
        pid = await client.create_producer(T)
        call = await client.stream(await client.subscribe(T, "s"))
        await send_n(client, pid, 10)
        got = [await next_message(call) for _ in range(3)]
        sub = subscription(broker, "s")
        assert len(sub.window) == 3
        assert all(c.session is not None and c.session.queue.empty() for c in sub.consumers.values())
        await client.ack(got[1])  # out of order: frees one slot
        got.append(await next_message(call))
        assert [m.msg_id.topic_offset for m in got] == [0, 1, 2, 3]
        assert sub.state.cursor == -1 and sub.state.acked == {1}
        for message in (got[0], got[2], got[3]):
            await client.ack(message)
        rest = [await next_message(call) for _ in range(3)]
        assert [m.msg_id.topic_offset for m in rest] == [4, 5, 6]
        assert sub.state.cursor == 3
        call.cancel()


async def test_nack_redelivers_with_delay_and_reason(client: StubClient) -> None:
    pid = await client.create_producer(T)
    call = await client.stream(await client.subscribe(T, "s"))
    await send_n(client, pid, 2)
    first = await next_message(call)
    await client.nack(first, delay_ms=50, reason="try later")
    second = await next_message(call)
    again = await next_message(call)
    assert (second.msg_id.topic_offset, again.msg_id.topic_offset) == (1, 0)
    await client.ack(second)
    await client.ack(again)
    call.cancel()


async def test_ack_timeout_redelivers(broker_factory: Factory) -> None:
    broker = await broker_factory(ack_timeout_ms=100)
    async with StubClient(broker.url) as client:
        pid = await client.create_producer(T)
        call = await client.stream(await client.subscribe(T, "s"))
        await send_n(client, pid, 1)
        first = await next_message(call)
        again = await next_message(call)  # never acked: comes back after the timeout + backoff
        assert again.msg_id.topic_offset == first.msg_id.topic_offset == 0
        await client.ack(again)
        await until(lambda: subscription(broker, "s").state.cursor == 0)
        call.cancel()


async def fail_forever(client: StubClient, call: Any, offset: int, deliveries: int) -> None:
    for _ in range(deliveries):
        message = await next_message(call)
        assert message.msg_id.topic_offset == offset
        await client.nack(message, reason="bad record")


async def test_poison_block_stops_the_subscription(broker_factory: Factory) -> None:
    broker = await broker_factory(max_redeliveries=2)
    async with StubClient(broker.url) as client:
        pid = await client.create_producer(T)
        call = await client.stream(await client.subscribe(T, "s", sub_type=SubType.Exclusive))
        await send_n(client, pid, 1)
        await fail_forever(client, call, 0, deliveries=3)  # 1 delivery + 2 redeliveries
        await send_n(client, pid, 2, start=1)
        sub = subscription(broker, "s")
        await until(lambda: sub.blocked)
        assert all(c.session is not None and c.session.queue.empty() for c in sub.consumers.values())
        assert sub.state.cursor == -1
        call.cancel()


async def test_poison_drop_skips_the_message(broker_factory: Factory) -> None:
    broker = await broker_factory(max_redeliveries=1, poison_policy="drop")
    async with StubClient(broker.url) as client:
        pid = await client.create_producer(T)
        call = await client.stream(await client.subscribe(T, "s"))
        await send_n(client, pid, 2)
        first = await next_message(call)
        second = await next_message(call)
        assert (first.msg_id.topic_offset, second.msg_id.topic_offset) == (0, 1)
        await client.ack(second)
        await client.nack(first)
        await fail_forever(client, call, 0, deliveries=1)
        await until(lambda: subscription(broker, "s").state.cursor == 1)
        await send_n(client, pid, 1, start=2)
        assert (await next_message(call)).payload == b"2"
        call.cancel()


async def test_poison_dead_letter(broker_factory: Factory) -> None:
    broker = await broker_factory(max_redeliveries=1, poison_policy="dead_letter")
    async with StubClient(broker.url) as client:
        pid = await client.create_producer(T, "prod")
        call = await client.stream(await client.subscribe(T, "s"))
        dlq = await client.stream(await client.subscribe(T + "-dlq", "dlq-reader"))
        await send_n(client, pid, 1, attributes={"a": "1"})
        await fail_forever(client, call, 0, deliveries=2)
        dead = await next_message(dlq)
        assert dead.payload == b"0"
        assert dead.msg_id.topic_name == T + "-dlq"
        attrs = dict(dead.attributes)
        assert attrs["a"] == "1"
        assert attrs["x-original-topic"] == T
        assert attrs["x-original-subscription"] == "s"
        assert attrs["x-original-topic-offset"] == "0"
        assert attrs["x-original-producer-id"] == str(pid)
        assert attrs["x-failure-reason"] == "bad record"
        await until(lambda: subscription(broker, "s").state.cursor == 0)
        call.cancel()
        dlq.cancel()


async def test_disconnect_hands_unacked_to_remaining_consumer(broker: EmbeddedBroker) -> None:
    async with StubClient(broker.url) as a, StubClient(broker.url) as b:
        pid = await a.create_producer(T)
        call_a = await a.stream(await a.subscribe(T, "s", "a"))
        await send_n(a, pid, 4)
        got_a = [await next_message(call_a) for _ in range(4)]  # b not connected yet: all go to a
        call_b = await b.stream(await b.subscribe(T, "s", "b"))
        await a.ack(got_a[0])
        call_a.cancel()
        await a.channel.close()  # the whole client goes away
        redelivered = sorted([(await next_message(call_b)).msg_id.topic_offset for _ in range(3)])
        assert redelivered == [1, 2, 3]
        await send_n(b, pid, 1, start=4)
        assert (await next_message(call_b)).payload == b"4"
        assert await b.partitions(T) == [T]  # still healthy
        call_b.cancel()


async def test_shared_round_robin(client: StubClient) -> None:
    pid = await client.create_producer(T)
    call_a = await client.stream(await client.subscribe(T, "s", "a", SubType.Shared))
    call_b = await client.stream(await client.subscribe(T, "s", "b", SubType.Shared))
    await send_n(client, pid, 4)
    got_a = [await next_message(call_a) for _ in range(2)]
    got_b = [await next_message(call_b) for _ in range(2)]
    assert sorted(m.msg_id.topic_offset for m in got_a + got_b) == [0, 1, 2, 3]
    call_a.cancel()
    call_b.cancel()


async def test_exclusive_other_name_denied_and_takeover(client: StubClient) -> None:
    await client.create_producer(T)
    cid = await client.subscribe(T, "s", "owner", SubType.Exclusive)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.subscribe(T, "s", "intruder", SubType.Exclusive)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    old = await client.stream(cid)
    assert await client.subscribe(T, "s", "owner", SubType.Exclusive) == cid
    assert await asyncio.wait_for(old.read(), 10) is grpc.aio.EOF
    assert await old.code() == grpc.StatusCode.OK


async def test_exclusive_released_after_disconnect(client: StubClient) -> None:
    await client.create_producer(T)
    call = await client.stream(await client.subscribe(T, "s", "one", SubType.Exclusive))
    call.cancel()

    async def subscribe_other() -> int:
        while True:
            try:
                return await client.subscribe(T, "s", "two", SubType.Exclusive)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
                await asyncio.sleep(0.02)  # the broker notices the cancelled stream asynchronously

    assert await asyncio.wait_for(subscribe_other(), 10) > 0


async def test_first_subscriber_fixes_type(broker: EmbeddedBroker, client: StubClient) -> None:
    await client.create_producer(T)
    await client.subscribe(T, "s", "a", SubType.Failover)
    await client.subscribe(T, "s", "b", SubType.Shared)
    assert subscription(broker, "s").sub_type == SubType.Failover


async def test_failover_standby_takes_over(client: StubClient) -> None:
    pid = await client.create_producer(T)
    active = await client.stream(await client.subscribe(T, "s", "a", SubType.Failover))
    standby = await client.stream(await client.subscribe(T, "s", "b", SubType.Failover))
    await send_n(client, pid, 3)
    got = [await next_message(active) for _ in range(3)]
    await client.ack(got[0])
    active.cancel()
    taken_over = sorted([(await next_message(standby)).msg_id.topic_offset for _ in range(2)])
    assert taken_over == [1, 2]
    standby.cancel()


async def test_key_shared_routing_order_and_filters(broker: EmbeddedBroker, client: StubClient) -> None:
    pid = await client.create_producer(T)
    call_a = await client.stream(await client.subscribe(T, "s", "a", SubType.KeyShared, ["eu-*"]))
    call_b = await client.stream(await client.subscribe(T, "s", "b", SubType.KeyShared, ["us-*"]))
    for key in ("eu-1", "us-1", "eu-1", "us-2"):
        await client.send(pid, T, key.encode(), routing_key=key)
    a1 = await next_message(call_a)
    b1 = await next_message(call_b)
    b2 = await next_message(call_b)  # us-2 is another key: not held back by us-1
    assert (a1.routing_key, b1.routing_key, b2.routing_key) == ("eu-1", "us-1", "us-2")
    sub = subscription(broker, "s")
    assert sub.window[2].key == "eu-1" and sub.window[2].session is None  # second eu-1 waits for the first
    await client.ack(a1)
    a2 = await next_message(call_a)
    assert (a2.routing_key, a2.msg_id.topic_offset) == ("eu-1", 2)
    call_a.cancel()
    call_b.cancel()


async def test_key_shared_same_key_same_consumer(client: StubClient) -> None:
    pid = await client.create_producer(T)
    calls = [await client.stream(await client.subscribe(T, "s", n, SubType.KeyShared)) for n in "abc"]
    received: dict[str, set[int]] = {}

    async def drain(index: int, call: Any) -> None:
        while True:
            message = await call.read()
            if message is grpc.aio.EOF:
                return
            received.setdefault(message.routing_key, set()).add(index)
            await client.ack(message)

    tasks = [asyncio.create_task(drain(i, c)) for i, c in enumerate(calls)]
    for i in range(60):
        await client.send(pid, T, b"x", routing_key=f"key-{i % 6}")
    await until(lambda: sum(1 for _ in received) == 6)
    await until(lambda: all(len(v) == 1 for v in received.values()))
    for call in calls:
        call.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(len(owners) == 1 for owners in received.values())


async def test_out_of_order_acks_survive_restart(broker_factory: Factory, tmp_path: Any) -> None:
    data = tmp_path / "restart"
    broker = await broker_factory(data_dir=data, max_unacked_messages=20)
    async with StubClient(broker.url) as client:
        pid = await client.create_producer(T)
        call = await client.stream(await client.subscribe(T, "s"))
        await send_n(client, pid, 10)
        got = [await next_message(call) for _ in range(10)]
        for message in got:
            if message.msg_id.topic_offset in (0, 1, 3, 6, 9):
                await client.ack(message)
        call.cancel()
    await broker.stop()
    broker = await broker_factory(data_dir=data)
    async with StubClient(broker.url) as client:
        call = await client.stream(await client.subscribe(T, "s"))
        again = [await next_message(call) for _ in range(5)]
        assert [m.msg_id.topic_offset for m in again] == [2, 4, 5, 7, 8]
        sub = subscription(broker, "s")
        assert len(sub.window) == 5 and sub.backlog() == 5
        pid = await client.create_producer(T)
        await send_n(client, pid, 1, start=10)
        assert (await next_message(call)).msg_id.topic_offset == 10
        call.cancel()


@pytest.mark.parametrize("name", ["s", "abonnement-ü-" + "x" * 150])
def test_delivered_bytes_carry_the_subscription_name(name: str) -> None:
    """A reliable subscription sends the stored record plus its encoded name: what a client decodes is
    the stored message with ``subscription_name`` set (multi-byte UTF-8 and a two-byte length included)."""
    stored = pb.StreamMessage(request_id=7, payload=b"p" * 300, producer_name="prod")
    stored.msg_id.topic_offset = 3
    field = encode_string_field(STREAM_MESSAGE_SUBSCRIPTION_NAME, name)
    decoded = pb.StreamMessage.FromString(stored.SerializeToString() + field)
    expected = pb.StreamMessage()
    expected.CopyFrom(stored)
    expected.subscription_name = name
    assert decoded == expected
