"""NonReliable dispatch: offset 0, drops when nobody listens or a buffer is full, acks ignored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from danube_embedded_broker import EmbeddedBroker
from danube_embedded_broker.testing import StubClient, next_message

Factory = Callable[..., Awaitable[EmbeddedBroker]]
T = "/default/nr"


def dropped(broker: EmbeddedBroker, subscription: str) -> float:
    value = broker.core.metrics.registry.get_sample_value(
        "danube_subscription_messages_dropped_total", {"topic": T, "subscription": subscription}
    )
    return value or 0.0


async def test_offsets_are_zero_and_acks_ignored(client: StubClient) -> None:
    pid = await client.create_producer(T, reliable=False)
    call = await client.stream(await client.subscribe(T, "s"))
    await client.send(pid, T, b"a")
    await client.send(pid, T, b"b")
    first, second = await next_message(call), await next_message(call)
    assert (first.payload, second.payload) == (b"a", b"b")
    assert first.msg_id.topic_offset == second.msg_id.topic_offset == 0
    await client.ack(first)
    await client.nack(second)
    call.cancel()


async def test_dropped_when_nobody_subscribed(broker: EmbeddedBroker, client: StubClient) -> None:
    pid = await client.create_producer(T, reliable=False)
    await client.send(pid, T, b"lost")
    call = await client.stream(await client.subscribe(T, "s"))
    await client.send(pid, T, b"kept")
    assert (await next_message(call)).payload == b"kept"
    call.cancel()


async def test_messages_between_subscribe_and_stream_are_buffered(client: StubClient) -> None:
    pid = await client.create_producer(T, reliable=False)
    cid = await client.subscribe(T, "s")
    await client.send(pid, T, b"early")
    call = await client.stream(cid)
    assert (await next_message(call)).payload == b"early"
    call.cancel()


async def test_full_buffer_drops(broker_factory: Factory) -> None:
    broker = await broker_factory(consumer_buffer=5)
    async with StubClient(broker.url) as client:
        pid = await client.create_producer(T, reliable=False)
        cid = await client.subscribe(T, "s")  # no stream yet: everything lands in its buffer
        for i in range(20):
            await client.send(pid, T, str(i).encode())
        assert dropped(broker, "s") == 15
        call = await client.stream(cid)
        got = [(await next_message(call)).payload for _ in range(5)]
        assert got == [b"0", b"1", b"2", b"3", b"4"]
        await client.send(pid, T, b"after")
        assert (await next_message(call)).payload == b"after"
        call.cancel()


async def test_not_persisted_across_restart(broker_factory: Factory, tmp_path: Path) -> None:
    data = tmp_path / "nr"
    broker = await broker_factory(data_dir=data)
    async with StubClient(broker.url) as client:
        pid = await client.create_producer(T, reliable=False)
        await client.subscribe(T, "s")
        await client.send(pid, T, b"x")
    await broker.stop()
    broker = await broker_factory(data_dir=data)
    async with StubClient(broker.url) as client:
        assert await client.partitions(T) == [T]  # the topic exists again, its messages do not
        cid = await client.subscribe(T, "s")
        call = await client.stream(cid)
        pid = await client.create_producer(T, reliable=False)
        await client.send(pid, T, b"new")
        assert (await next_message(call)).payload == b"new"
        call.cancel()
