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


async def test_producer_follows_a_topic_to_its_new_broker(broker_factory: Any) -> None:
    old_owner = await broker_factory()
    new_owner = await broker_factory()
    lookup = await broker_factory(advertised_url=old_owner.url)
    service_url = f"http://127.0.0.1:{lookup.port}"  # lookup.url is the advertised (old owner's) URL
    topic = "/default/moving"
    options = ClientOptions(retry=RetryPolicy(max_retries=6, base_backoff_ms=20, max_backoff_ms=200))

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
