"""Broker restarts: a real broker process is stopped for 8 s mid-stream and restarted on the same port and
data dir. The client must resume by itself, lose nothing the broker acknowledged, and stay quiet."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from danube_connect_core.client import DanubeClient, RetriesExhausted

pytestmark = pytest.mark.slow

CLIENT_LOGGER = "danube_connect_core.client"


async def wait_until(predicate: Callable[[], bool], bound_s: float) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 (the state belongs to other tasks: poll it)
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), bound_s)


async def test_broker_restart_during_reliable_stream(
    broker_process: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=CLIENT_LOGGER)
    url = broker_process.start()
    topic = "/default/outage"
    client = DanubeClient(url)
    producer = await client.create_producer(topic, "p", partitions=2, reliable=True)
    consumer = await client.subscribe(topic, "sub", consumer_name="c")

    acked: list[int] = []  # payloads the broker acknowledged, in order
    received: set[int] = set()
    exhausted = 0
    stop = asyncio.Event()

    async def produce() -> None:
        nonlocal exhausted
        i = 0
        while not stop.is_set():
            try:
                await producer.send(str(i).encode())
            except RetriesExhausted:
                exhausted += 1  # within its retry bound; calling again is the documented recovery
                continue
            acked.append(i)
            i += 1
            await asyncio.sleep(0.01)

    async def consume() -> None:
        async for msg in consumer:
            received.add(int(msg.payload))
            await consumer.ack(msg)

    producing = asyncio.create_task(produce())
    consuming = asyncio.create_task(consume())
    await wait_until(lambda: len(received) >= 50, 30)

    await asyncio.to_thread(broker_process.stop)
    outage_started = time.monotonic()
    first_record = len(caplog.records)
    await asyncio.sleep(8)
    outage_records = [r for r in caplog.records[first_record:] if r.name.startswith(CLIENT_LOGGER)]
    outage_s = time.monotonic() - outage_started
    assert broker_process.start() == url
    back_at = len(acked)

    # the consumer resumes by itself: it receives a message acknowledged after the broker came back
    await wait_until(lambda: len(acked) > back_at, 15)
    first_new = acked[back_at]
    await wait_until(lambda: any(i >= first_new for i in received), 10)

    stop.set()
    await producing
    # nothing the broker acknowledged is lost (duplicates are allowed: at-least-once)
    await wait_until(lambda: set(acked) <= received, 30)
    consuming.cancel()
    await asyncio.gather(consuming, return_exceptions=True)
    await client.close()
    assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == set()

    # quiet while the broker was away: a few lines per second at most, in any one-second window too
    assert len(outage_records) <= 3 * outage_s, [r.getMessage() for r in outage_records]
    times = [r.created for r in outage_records]
    assert all(sum(1 for t in times if s <= t < s + 1.0) <= 6 for s in times)
    assert exhausted >= 0


async def test_consumer_survives_repeated_restarts(broker_process: Any) -> None:
    """Reconnect is forever, not a bounded number of tries: two outages longer than the retry budget."""
    url = broker_process.start()
    topic = "/default/twice"
    async with DanubeClient(url) as client:
        producer = await client.create_producer(topic, "p", reliable=True)
        consumer = await client.subscribe(topic, "sub", consumer_name="c")
        for round_ in range(2):
            await asyncio.to_thread(broker_process.stop)
            await asyncio.sleep(7)
            broker_process.start()
            for attempt in range(3):
                try:
                    await producer.send(f"r{round_}".encode())
                    break
                except RetriesExhausted:
                    if attempt == 2:
                        raise
            msg = await asyncio.wait_for(consumer.receive(), 15)
            assert msg.payload == f"r{round_}".encode()
            await consumer.ack(msg)
