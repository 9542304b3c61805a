"""Namespace and topic lookup, partitioned topics and key routing (what Lookup and Producer rely on)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import grpc
import pytest
from danube_connect_core.client import fnv1a_64
from danube_embedded_broker.testing import StubClient
from danube_embedded_broker.wire import pb

from .conformance_support import Target, owned_topic, receive_n, status_of


async def test_lookup_of_an_existing_topic_connects_to_its_owner(target: Target) -> None:
    """Exactly one broker answers Connect (with its own URL); the others answer Redirect to it."""
    topic, owner = await owned_topic(target, "lookup")
    brokers = [target.service_url, *target.peer_urls]
    assert owner in brokers
    async with StubClient(owner) as stub:
        answer = await stub.lookup(topic)
    assert answer.response_type == pb.TopicLookupResponse.LookupType.Connect
    assert answer.connect_url.rstrip("/") == owner
    assert answer.broker_url.rstrip("/") == owner
    assert not answer.proxy


async def test_lookup_of_a_missing_topic_is_not_found(target: Target) -> None:
    """Our Lookup falls back to the service URL on NOT_FOUND (producers auto-create the topic there)."""
    async with StubClient(target.service_url) as stub:
        code = await status_of(stub.lookup(target.topic("missing")))
    assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("name", ["no-slash", "/only-namespace", "/a/b/c"])
async def test_lookup_of_a_malformed_name_is_invalid_argument(target: Target, name: str) -> None:
    async with StubClient(target.service_url) as stub:
        assert await status_of(stub.lookup(name)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_partitions_of_a_missing_topic_is_an_empty_list(target: Target) -> None:
    """Our client turns the empty list into NOT_FOUND (the sink runtime then waits for the topic)."""
    async with StubClient(target.service_url) as stub:
        assert await stub.partitions(target.topic("missing")) == []


async def test_partitions_of_a_plain_topic_is_the_topic(target: Target) -> None:
    topic = target.topic("plain")
    async with target.client() as client:
        await client.create_producer(topic, "p", reliable=True)
    async with StubClient(target.service_url) as stub:
        assert await stub.partitions(topic) == [topic]


async def test_partitioned_topic_lists_its_partitions_and_routes_by_key(target: Target) -> None:
    topic = target.topic("parts")
    keys = [f"key-{i}" for i in range(12)]
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", partitions=3, reliable=True)
        async with StubClient(target.service_url) as stub:
            assert sorted(await stub.partitions(topic)) == [f"{topic}-part-{i}" for i in range(3)]
        consumer = await client.subscribe(topic, "s", consumer_name="c")
        assert sorted(consumer.partition_topics) == [f"{topic}-part-{i}" for i in range(3)]
        sent = {}
        for round_ in range(2):
            for key in keys:
                message_id = await producer.send(f"{key}/{round_}".encode(), key=key)
                assert message_id.partition == fnv1a_64(key) % 3
                sent[f"{key}/{round_}"] = message_id.partition
        received = await receive_n(consumer, len(sent))
    partitions_of_key: defaultdict[str, set[int | None]] = defaultdict(set)
    for message in received:
        payload = message.payload.decode()
        assert message.partition == sent[payload]
        assert message.partition_topic == f"{topic}-part-{message.partition}"
        assert message.routing_key == payload.split("/")[0]
        partitions_of_key[payload.split("/")[0]].add(message.partition)
    assert sorted(m.payload.decode() for m in received) == sorted(sent)
    assert all(len(parts) == 1 for parts in partitions_of_key.values())


async def test_unkeyed_sends_spread_over_every_partition(target: Target) -> None:
    topic = target.topic("rr")
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", partitions=3, reliable=True)
        consumer = await client.subscribe(topic, "s", consumer_name="c")
        await asyncio.gather(*(producer.send(f"m{i}".encode()) for i in range(9)))
        received = await receive_n(consumer, 9)
    assert {m.partition for m in received} == {0, 1, 2}


async def test_topic_in_a_missing_namespace_is_refused(target: Target) -> None:
    topic = f"/conf-no-such-ns-{target.topic('x').rsplit('-', 1)[1]}/t"
    async with StubClient(target.service_url) as stub:
        code = await status_of(stub.create_producer(topic, "p"))
    assert code == grpc.StatusCode.UNAVAILABLE
