"""Topic names, namespaces, lookup and partitions (docs/wire-contract.md §2, "Names and namespaces")."""

from __future__ import annotations

import grpc
import pytest
from danube_embedded_broker import EmbeddedBroker
from danube_embedded_broker.testing import StubClient
from danube_embedded_broker.wire import pb

BAD_NAMES = ["default/t", "/default", "/default/t/x", "/default/t.x", "/default/", "//t", "/def ault/t", ""]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_bad_topic_name_is_invalid_argument(client: StubClient, name: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.create_producer(name)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.subscribe(name, "s")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.lookup(name)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_missing_namespace_is_unavailable(client: StubClient) -> None:
    for call in (client.create_producer("/stripe/payments"), client.subscribe("/stripe/payments", "s")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "stripe" in (err.value.details() or "")


async def test_builtin_and_configured_namespaces(broker_factory: object) -> None:
    broker: EmbeddedBroker = await broker_factory(namespaces=("stripe", "iot"))  # type: ignore[operator]
    async with StubClient(broker.url) as client:
        for topic in ("/default/a", "/system/a", "/stripe/payments", "/iot/t-1_x"):
            assert await client.create_producer(topic) > 0


async def test_subscribe_never_creates_topics(client: StubClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.subscribe("/default/nope", "s")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert await client.partitions("/default/nope") == []


async def test_auto_create_off(broker_factory: object) -> None:
    broker: EmbeddedBroker = await broker_factory(auto_create_topics=False)  # type: ignore[operator]
    async with StubClient(broker.url) as client:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.create_producer("/default/t")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_lookup_connects_to_this_broker(broker: EmbeddedBroker, client: StubClient) -> None:
    await client.create_producer("/default/anything", "p")
    response = await client.lookup("/default/anything")
    assert response.response_type == pb.TopicLookupResponse.LookupType.Connect
    assert response.connect_url == broker.url
    assert response.broker_url == broker.url
    assert not response.proxy


async def test_lookup_of_a_missing_topic_is_not_found(client: StubClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.lookup("/default/missing")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_partitions(client: StubClient) -> None:
    await client.create_producer("/default/plain")
    assert await client.partitions("/default/plain") == ["/default/plain"]
    for i in (0, 1, 2, 10, 3, 4, 5, 6, 7, 8, 9):
        await client.create_producer(f"/default/orders-part-{i}")
    await client.create_producer("/default/orders_v2")
    await client.create_producer("/default/orders-part-x")
    assert await client.partitions("/default/orders") == [f"/default/orders-part-{i}" for i in range(11)]
