"""JWT authentication and the Prometheus exporter."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Awaitable, Callable

import grpc
import jwt
import pytest
from danube_embedded_broker import EmbeddedBroker
from danube_embedded_broker.testing import StubClient, next_message

Factory = Callable[..., Awaitable[EmbeddedBroker]]
SECRET = "test-secret-please-ignore-0123456789"


def token(secret: str = SECRET, **claims: object) -> str:
    return jwt.encode({"sub": "tester", **claims}, secret, algorithm="HS256")


async def test_rpcs_without_valid_token_are_unauthenticated(broker_factory: Factory) -> None:
    broker = await broker_factory(auth_secret=SECRET)
    expired = token(exp=int(time.time()) - 60)
    bad_tokens = [None, token("wrong-secret-wrong-secret-wrong-secret"), expired, "junk"]
    for bad in bad_tokens:
        async with StubClient(broker.url, token=bad) as client:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.create_producer("/default/t")
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.health(0, 1)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            call = client.receive(1)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await asyncio.wait_for(call.read(), 10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert SECRET not in (err.value.details() or "")

    async with StubClient(broker.url, token=token()) as client:
        pid = await client.create_producer("/default/t")
        call = await client.stream(await client.subscribe("/default/t", "s"))
        await client.send(pid, "/default/t", b"ok")
        assert (await next_message(call)).payload == b"ok"
        call.cancel()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


async def test_metrics(broker_factory: Factory) -> None:
    broker = await broker_factory(metrics_port=0)
    assert broker.metrics_port
    async with StubClient(broker.url) as client:
        pid = await client.create_producer("/default/m")
        call = await client.stream(await client.subscribe("/default/m", "s"))
        for i in range(3):
            await client.send(pid, "/default/m", bytes([i]))
        await client.ack(await next_message(call))
        await next_message(call)
        await next_message(call)
        text = await asyncio.to_thread(scrape, broker.metrics_port)
        call.cancel()
    assert 'danube_topic_messages_in_total{topic="/default/m"} 3.0' in text
    assert 'danube_topic_messages_out_total{topic="/default/m"} 3.0' in text
    assert 'danube_subscription_backlog{subscription="s",topic="/default/m"} 2.0' in text
    assert 'danube_topic_producers{topic="/default/m"} 1.0' in text
    assert 'danube_topic_consumers{topic="/default/m"} 1.0' in text
