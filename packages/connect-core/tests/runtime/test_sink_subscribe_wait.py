"""A sink started before its topic exists: waits not-ready, retries often, becomes ready once it exists."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from danube_connect_core import sink_runtime
from danube_connect_core.config import RetrySettings
from danube_connect_core.consumer_config import ConsumerConfig
from danube_connect_core.sink_runtime import SUBSCRIBE_RETRY_MAX_WAIT_S, SinkRuntime, subscribe_retry_delay
from danube_connect_core.testing import MemorySink, http_get, make_config, produce
from danube_connect_core.testing.waits import wait_for_status

TOPIC = "/default/late-topic"


def test_subscribe_retry_delay_is_capped_whatever_the_retry_settings() -> None:
    for settings in (RetrySettings(), RetrySettings(retry_backoff_ms=5000, max_backoff_ms=120_000)):
        delays = [subscribe_retry_delay(n, settings) for n in range(200)]
        assert all(0 < d <= SUBSCRIBE_RETRY_MAX_WAIT_S for d in delays)
    # a smaller configured backoff is still honoured
    small = RetrySettings(retry_backoff_ms=10, max_backoff_ms=50)
    assert all(d <= 0.05 for d in (subscribe_retry_delay(n, small) for n in range(50)))


async def test_sink_started_before_its_topic_becomes_ready_when_it_appears(
    broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen: list[float] = []
    six_failures = asyncio.Event()
    real = sink_runtime.subscribe_retry_delay

    def recording(attempt: int, retry: RetrySettings) -> float:
        d = real(attempt, retry)
        chosen.append(d)
        if len(chosen) >= 6:  # six failed attempts: the old backoff would now wait 16-30 s
            six_failures.set()
        return d

    monkeypatch.setattr(sink_runtime, "subscribe_retry_delay", recording)
    sink = MemorySink([ConsumerConfig(TOPIC, "late-sub")])
    # default [retry]: 1 s base, 30 s cap -- the exponential backoff these settings give is not used here
    runtime = SinkRuntime(sink, make_config(broker.url, "late-sink"))
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await asyncio.wait_for(six_failures.wait(), 60)
        status, body = await asyncio.to_thread(http_get, runtime.port, "/ready")
        assert status == 503
        assert TOPIC in json.loads(body)["checks"]["danube"]["detail"]
        assert all(d <= SUBSCRIBE_RETRY_MAX_WAIT_S for d in chosen)

        await produce(broker.url, TOPIC, [])  # the source creates the topic
        await wait_for_status(runtime.port, within=60)
        await produce(broker.url, TOPIC, [{"n": 1}])
        (record,) = await sink.wait_for(1, within=60)
        assert record.payload == {"n": 1}
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 60) == 0
