"""A topic moving to another broker: what a Danube cluster does when the broker that owns a topic stops.

Against a real 3-broker Danube cluster, stopping the owner made the lookup answer a live broker within
seconds, while our producer kept retrying UNAVAILABLE on the dead broker's channel until its retries ran
out, again and again. Here three embedded brokers play the cluster: ``lookup`` is the client's service URL
and answers lookups with the owner's URL (as a Danube broker answers Redirect); the test stops the owner
and points the lookup at the new owner, as the cluster's reassignment does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from danube_connect_core.client import ClientOptions, DanubeClient, RetryPolicy
from danube_embedded_broker.testing import StubClient


async def test_producer_follows_a_topic_to_its_new_broker(broker_factory: Any) -> None:
    old_owner = await broker_factory()
    new_owner = await broker_factory()
    lookup = await broker_factory(advertised_url=old_owner.url)
    service_url = f"http://127.0.0.1:{lookup.port}"  # lookup.url is the advertised (old owner's) URL
    topic = "/default/moving"
    options = ClientOptions(retry=RetryPolicy(max_retries=6, base_backoff_ms=20, max_backoff_ms=200))

    async with StubClient(service_url) as stub:
        # The lookup broker knows the topic (a Danube cluster's metadata does; a missing topic is NOT_FOUND,
        # and the client would then create it on the service URL itself).
        await stub.create_producer(topic)
    async with DanubeClient(new_owner.url) as direct:
        # The topic must exist on the new owner before a consumer can subscribe there.
        await (await direct.create_producer(topic, "seed", reliable=True)).send(b"seed")
        consumer = await direct.subscribe(topic, "sub", consumer_name="c")
        async with DanubeClient(service_url, options) as client:
            producer = await client.create_producer(topic, "p", reliable=True)
            await producer.send(b"before")
            assert old_owner.core.topic_exists(topic)

            await old_owner.stop()
            lookup.core.url = new_owner.url  # the cluster reassigned the topic
            message_id = await producer.send(b"after")

            assert message_id.topic == topic
            received = await asyncio.wait_for(consumer.receive(), 30)
            assert received.payload == b"after"
            assert received.producer_name == "p"


async def test_consumer_follows_a_topic_and_drops_acks_for_the_old_broker(broker_factory: Any) -> None:
    """The consumer re-subscribes where the topic went. An ack for a message the stopped broker delivered
    returns False and is sent nowhere: not to the new owner, whose offsets belong to another log (offset 0
    there is another message), and not to the dead broker through the whole retry policy."""
    old_owner = await broker_factory()
    new_owner = await broker_factory()
    lookup = await broker_factory(advertised_url=old_owner.url)
    service_url = f"http://127.0.0.1:{lookup.port}"
    topic = "/default/moving-consumer"
    # Without the fix an ack retries the dead broker for about 1,000 x 0.2 s.
    patient = RetryPolicy(max_retries=1000, base_backoff_ms=20, max_backoff_ms=200)
    options = ClientOptions(retry=patient, health_interval_s=0.5)

    async with DanubeClient(new_owner.url) as direct:
        # The topic and the subscription exist on the new owner (a cluster keeps both in its metadata).
        await (await direct.create_producer(topic, "seed", reliable=True)).send(b"seed")
        await (await direct.subscribe(topic, "sub", consumer_name="pre")).close()
    async with StubClient(service_url) as stub:
        await stub.create_producer(topic)  # the lookup broker knows the topic (lookup, TopicPartitions)

    async with DanubeClient(service_url, options) as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        consumer = await client.subscribe(topic, "sub", consumer_name="c")
        await producer.send(b"before")
        before = await asyncio.wait_for(consumer.receive(), 30)
        assert before.payload == b"before"

        await old_owner.stop()
        lookup.core.url = new_owner.url
        await producer.send(b"after")
        after = await asyncio.wait_for(consumer.receive(), 60)
        assert after.payload == b"after"
        assert after.offset == 1  # the new owner's log: seed, after

        assert await asyncio.wait_for(consumer.ack(before), 60) is False
        assert await consumer.ack(after) is True
