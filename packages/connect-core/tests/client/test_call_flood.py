"""Thousands of calls at once against a broker process: the gRPC server cancels some of them (seen from
~1,000 concurrent calls on these machines). A call cancelled while the client is open is sent again, not
given up as if the client were closing: every ack is delivered and nothing is redelivered; every send
succeeds and reaches the topic (at-least-once: a retried send may be stored twice)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from danube_connect_core.client import ClientOptions, DanubeClient, RetryPolicy
from danube_embedded_broker.testing import BrokerProcess

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # broker processes

N = 3_000
TOPIC = "/default/call-flood"
#: Generous retries: under a flood of this size some acks are cancelled several times in a row.
PATIENT = ClientOptions(retry=RetryPolicy(max_retries=30, base_backoff_ms=50, max_backoff_ms=2_000))


async def test_acks_cancelled_by_the_server_are_sent_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="danube_connect_core.client")
    # The whole backlog in the window at once, and no ack timeout during the test: only a lost ack could
    # bring a message back.
    args = ["--max-unacked", str(N), "--ack-timeout-ms", "600000", "--fsync", "never"]
    with BrokerProcess(tmp_path / "broker-data", args=args) as broker:
        async with DanubeClient(broker.url, PATIENT) as client:
            producer = await client.create_producer(TOPIC, "p", reliable=True, max_in_flight=64)
            consumer = await client.subscribe(TOPIC, "sub", consumer_name="first")
            window = asyncio.Semaphore(64)

            async def send(i: int) -> None:
                async with window:
                    await producer.send(str(i).encode())

            await asyncio.gather(*(send(i) for i in range(N)))
            messages = [await asyncio.wait_for(consumer.receive(), 60) for _ in range(N)]
            delivered = await asyncio.gather(*(consumer.ack(m) for m in messages))
            assert delivered.count(False) == 0, f"{delivered.count(False)} of {N} acks given up"
            await consumer.close()

            # A new consumer on the same subscription gets every unacked message again at once; with
            # every ack delivered, the first message it sees is the one sent after them.
            await producer.send(b"after")
            second = await client.subscribe(TOPIC, "sub", consumer_name="second")
            first_seen = await asyncio.wait_for(second.receive(), 60)
            assert first_seen.payload == b"after"
    assert not [r for r in caplog.records if "client closing" in r.getMessage()], "an ack was dropped"


async def test_sends_cancelled_by_the_server_are_sent_again(tmp_path: Path) -> None:
    args = ["--max-unacked", str(N), "--fsync", "never"]
    with BrokerProcess(tmp_path / "broker-data", args=args) as broker:
        async with DanubeClient(broker.url, PATIENT) as client:
            # A window as large as the burst: all N sends are in flight at once.
            producer = await client.create_producer(TOPIC, "p", reliable=True, max_in_flight=N)
            consumer = await client.subscribe(TOPIC, "sub", consumer_name="reader")
            outcomes = await asyncio.gather(
                *(producer.send(str(i).encode()) for i in range(N)), return_exceptions=True
            )
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            assert not failures, f"{len(failures)} of {N} sends failed, e.g. {failures[0]!r}"

            seen: set[int] = set()
            while len(seen) < N:
                message = await asyncio.wait_for(consumer.receive(), 60)
                seen.add(int(message.payload))
                assert await consumer.ack(message)
            assert seen == set(range(N))
