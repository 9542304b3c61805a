"""A topic owned by one broker, asked about through another (DANUBE_CONFORMANCE_PEER_URLS, or the embedded
default's peer broker)."""

from __future__ import annotations

import pytest
from danube_embedded_broker.testing import StubClient
from danube_embedded_broker.wire import pb

from .conformance_support import Target, receive, receive_n


@pytest.fixture
def peers(target: Target) -> list[str]:
    if not target.peer_urls:
        pytest.skip("no DANUBE_CONFORMANCE_PEER_URLS: the broker under test is a single node")
    return target.peer_urls


async def _share_metadata(target: Target, topic: str) -> None:
    """Embedded peers share no metadata (a Danube cluster's brokers do): make the topic known to them."""
    if target.embedded:
        for url in target.peer_urls:
            async with StubClient(url) as stub:
                await stub.create_producer(topic, "metadata")


async def _owner(url: str, topic: str) -> str:
    async with StubClient(url) as stub:
        answer = await stub.lookup(topic)
    return str(answer.broker_url).rstrip("/")


async def test_lookup_through_another_broker_redirects_to_the_owner(target: Target, peers: list[str]) -> None:
    topic = target.topic("owned")
    async with target.client() as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        await producer.send(b"x")
    await _share_metadata(target, topic)
    owner = await _owner(target.service_url, topic)
    brokers = [target.service_url, *peers]
    assert owner in brokers
    for url in brokers:
        async with StubClient(url) as stub:
            answer = await stub.lookup(topic)
        expected = (
            pb.TopicLookupResponse.LookupType.Connect
            if url == owner
            else pb.TopicLookupResponse.LookupType.Redirect
        )
        assert answer.response_type == expected, url
        assert answer.connect_url.rstrip("/") == owner
        assert not answer.proxy


async def test_our_client_through_each_broker_reaches_the_owner(target: Target, peers: list[str]) -> None:
    """Producer and consumer created through a broker that does not own the topic work end to end."""
    topic = target.topic("redirect")
    async with target.client() as client:
        await client.create_producer(topic, "seed", reliable=True)
    await _share_metadata(target, topic)
    owner = await _owner(target.service_url, topic)
    others = [u for u in [target.service_url, *peers] if u != owner]
    assert others
    via = others[0]
    async with target.client(url=via) as client:
        consumer = await client.subscribe(topic, "s", consumer_name="c")
        producer = await client.create_producer(topic, "p", reliable=True)
        for i in range(10):
            await producer.send(f"r{i}".encode())
        received = await receive_n(consumer, 10)
        await producer.send(b"last")
        assert (await receive(consumer)).payload == b"last"
    assert [m.payload for m in received] == [f"r{i}".encode() for i in range(10)]
    assert all(m.msg_id.broker_addr.rstrip("/") in ("", owner) or m.msg_id.broker_addr for m in received)
