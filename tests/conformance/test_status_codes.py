"""The gRPC status of every broker answer our client branches on (client/errors.py, lookup.py, runtimes).

RETRY: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED; RECREATE: NOT_FOUND (producer/consumer gone);
FAIL: PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS, UNAUTHENTICATED and any
other. The sink runtime waits on NOT_FOUND when subscribing to a topic that does not exist yet.
"""

from __future__ import annotations

import grpc
import pytest
from danube_connect_core.client import DanubeError, NonRetryableError, RetriesExhausted
from danube_embedded_broker.testing import StubClient
from danube_embedded_broker.wire import pb

from .conformance_support import Target, create_producer, owned_topic, status_of

EXCLUSIVE = pb.ConsumerRequest.SubscriptionType.Exclusive


async def test_send_from_an_unknown_producer_is_not_found(target: Target) -> None:
    """NOT_FOUND makes our producer re-create itself (the broker lost it, e.g. after a restart)."""
    topic, owner = await owned_topic(target, "ghost")
    async with StubClient(owner) as stub:
        await create_producer(stub, topic)
        code = await status_of(stub.send(123_456_789, topic, b"x"))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_receive_for_an_unknown_consumer_is_not_found(target: Target) -> None:
    async with StubClient(target.service_url) as stub:
        call = stub.receive(987_654_321)
        code = await status_of(call.read())
    assert code == grpc.StatusCode.NOT_FOUND


async def test_subscribe_to_a_missing_topic_is_not_found(target: Target) -> None:
    """The sink runtime keeps waiting for a topic on NOT_FOUND (a fatal error for anything else)."""
    async with StubClient(target.service_url) as stub:
        code = await status_of(stub.subscribe(target.topic("nosuch"), "s"))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_our_subscribe_to_a_missing_topic_is_a_not_found_danube_error(target: Target) -> None:
    async with target.client(max_retries=0) as client:
        with pytest.raises(DanubeError) as missing:
            await client.subscribe(target.topic("nosuch"), "s", consumer_name="c")
    assert missing.value.code == grpc.StatusCode.NOT_FOUND
    assert not isinstance(missing.value, RetriesExhausted)


@pytest.mark.parametrize("name", ["no-slash", "/a/b/c"])
async def test_producer_on_a_malformed_topic_is_invalid_argument(target: Target, name: str) -> None:
    async with StubClient(target.service_url) as stub:
        assert await status_of(stub.create_producer(name, "p")) == grpc.StatusCode.INVALID_ARGUMENT


async def test_producer_with_the_other_dispatch_strategy_is_refused(target: Target) -> None:
    topic, owner = await owned_topic(target, "strategy", reliable=True)
    async with StubClient(owner) as stub:
        code = await status_of(stub.create_producer(topic, "p2", reliable=False))
    assert code == grpc.StatusCode.FAILED_PRECONDITION


async def test_first_create_of_a_new_topic_is_ok_or_unavailable_then_ok(target: Target) -> None:
    """Real Danube answers the first CreateProducer of a new topic UNAVAILABLE ("redo the lookup")."""
    topic = target.topic("fresh")
    async with StubClient(target.service_url) as stub:
        first = await status_of(stub.create_producer(topic, "p"))
        assert first in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)
        owner = str((await stub.lookup(topic)).connect_url).rstrip("/")
    async with StubClient(owner) as stub:
        assert await create_producer(stub, topic) > 0


@pytest.mark.parametrize("size", [4 * 1024 * 1024 + 1, 11 * 1024 * 1024])
async def test_message_over_four_mib_is_out_of_range_without_retry(target: Target, size: int) -> None:
    """Danube's gRPC server decodes at most 4 MiB per request (its 10 MB max_message_size is not reached)."""
    topic = target.topic("big")
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        await producer.send(b"x" * (4 * 1024 * 1024 - 1024))
        with pytest.raises(NonRetryableError) as refused:
            await producer.send(b"x" * size)
        await producer.send(b"small")  # the producer stays usable
    assert refused.value.code == grpc.StatusCode.OUT_OF_RANGE


async def test_second_exclusive_consumer_is_permission_denied(target: Target) -> None:
    topic, owner = await owned_topic(target, "excl")
    async with StubClient(owner) as stub:
        await stub.subscribe(topic, "s", name="c1", sub_type=EXCLUSIVE)
        code = await status_of(stub.subscribe(topic, "s", name="c2", sub_type=EXCLUSIVE))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_health_of_an_unknown_producer_is_close(target: Target) -> None:
    async with StubClient(target.service_url) as stub:
        status = await stub.health(pb.HealthCheckRequest.ClientType.Producer, 42_424_242)
    assert status == pb.HealthCheckResponse.ClientStatus.CLOSE


async def test_health_of_a_live_producer_is_ok(target: Target) -> None:
    topic, owner = await owned_topic(target, "healthy")
    async with StubClient(owner) as stub:
        producer_id = await create_producer(stub, topic)
        status = await stub.health(pb.HealthCheckRequest.ClientType.Producer, producer_id)
    assert status == pb.HealthCheckResponse.ClientStatus.OK


async def test_unreachable_broker_is_unavailable_and_retries_run_out(target: Target) -> None:
    from danube_connect_core.client import ClientOptions, DanubeClient, RetryPolicy

    options = ClientOptions(retry=RetryPolicy(max_retries=1, base_backoff_ms=10, max_backoff_ms=20))
    async with DanubeClient("http://127.0.0.1:9", options) as client:
        with pytest.raises(RetriesExhausted) as exhausted:
            await client.create_producer(target.topic("nowhere"), "p")
    assert exhausted.value.code == grpc.StatusCode.UNAVAILABLE
