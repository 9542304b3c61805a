"""CreateProducer, SendMessage, sizes and HealthCheck."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from danube_embedded_broker import EmbeddedBroker
from danube_embedded_broker.testing import StubClient, next_message
from danube_embedded_broker.wire import pb

PRODUCER = pb.HealthCheckRequest.ClientType.Producer
CONSUMER = pb.HealthCheckRequest.ClientType.Consumer
OK = pb.HealthCheckResponse.ClientStatus.OK
CLOSE = pb.HealthCheckResponse.ClientStatus.CLOSE


async def test_same_producer_name_same_id(client: StubClient) -> None:
    first = await client.create_producer("/default/t", "p1")
    assert await client.create_producer("/default/t", "p1") == first
    assert await client.create_producer("/default/t", "p2") != first


async def test_dispatch_strategy_mismatch_is_failed_precondition(client: StubClient) -> None:
    await client.create_producer("/default/t", "p1", reliable=True)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.create_producer("/default/t", "p2", reliable=False)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_exclusive_producer_conflict(client: StubClient) -> None:
    exclusive = pb.ProducerAccessMode.Exclusive
    await client.create_producer("/default/t", "p1", producer_access_mode=exclusive)
    assert await client.create_producer("/default/t", "p1", producer_access_mode=exclusive) > 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.create_producer("/default/t", "p2")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_unknown_producer_is_not_found(client: StubClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.send(12345, "/default/t", b"x")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_send_fills_in_msg_id_and_publish_time(client: StubClient, broker: EmbeddedBroker) -> None:
    pid = await client.create_producer("/default/t", "p")
    cid = await client.subscribe("/default/t", "s", "c")
    call = client.receive(cid)
    await client.send(pid, "/default/t", b"a", attributes={"k": "v"}, routing_key="rk")
    await client.send(pid, "/default/t", b"b", publish_time=42)
    first, second = await next_message(call), await next_message(call)
    assert (first.payload, second.payload) == (b"a", b"b")
    assert first.msg_id.producer_id == pid
    assert first.msg_id.topic_name == "/default/t"
    assert first.msg_id.broker_addr == broker.url
    assert (first.msg_id.topic_offset, second.msg_id.topic_offset) == (0, 1)
    assert first.publish_time > 1_600_000_000_000 and second.publish_time == 42
    assert first.producer_name == "p" and first.subscription_name == "s"
    assert dict(first.attributes) == {"k": "v"} and first.routing_key == "rk"
    call.cancel()


async def test_four_mib_limit_and_oversize_is_refused_cleanly(client: StubClient) -> None:
    """As on a real Danube broker: an encoded request over 4 MiB is OUT_OF_RANGE (tonic's decode limit)."""
    pid = await client.create_producer("/default/big", "p")
    await client.send(pid, "/default/big", b"x" * (4 * 1024 * 1024 - 1024))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.send(pid, "/default/big", b"x" * (4 * 1024 * 1024 + 1))
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.send(pid, "/default/big", b"x" * (10 * 1024 * 1024 + 1))
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
    # Far beyond gRPC's own receive limit: gRPC refuses it, the broker keeps serving.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.send(pid, "/default/big", b"x" * (30 * 1024 * 1024))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await client.send(pid, "/default/big", b"still serving")
    assert await client.partitions("/default/big") == ["/default/big"]


async def test_health(client: StubClient) -> None:
    await client.create_producer("/default/t", "p")
    pid = await client.create_producer("/default/t", "p")
    cid = await client.subscribe("/default/t", "s", "c")
    assert await client.health(PRODUCER, pid) == OK
    assert await client.health(CONSUMER, cid) == OK
    assert await client.health(PRODUCER, 999) == CLOSE
    assert await client.health(CONSUMER, 999) == CLOSE


async def test_stop_ends_streams_and_rpcs_fail_unavailable(broker_factory: object) -> None:
    broker: EmbeddedBroker = await broker_factory()  # type: ignore[operator]
    async with StubClient(broker.url) as client:
        await client.create_producer("/default/t", "p")
        call = client.receive(await client.subscribe("/default/t", "s", "c"))
        await asyncio.wait_for(call.initial_metadata(), 10)
        await broker.stop()
        assert await asyncio.wait_for(call.read(), 10) is grpc.aio.EOF
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.lookup("/default/t")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_payload_over_max_message_bytes_is_invalid_argument(broker_factory: object) -> None:
    broker: EmbeddedBroker = await broker_factory(max_message_bytes=1000)  # type: ignore[operator]
    async with StubClient(broker.url) as client:
        pid = await client.create_producer("/default/small", "p")
        await client.send(pid, "/default/small", b"x" * 1000)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.send(pid, "/default/small", b"x" * 1001)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
