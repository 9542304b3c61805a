"""5,000 records on a 4-partition reliable topic through the real ``danube-connect run http`` process,
SIGKILLed mid-stream and restarted: every record reaches the target at least once, and every repeated
delivery carries the same Idempotency-Key as the first (the target could de-duplicate on it)."""

from __future__ import annotations

import asyncio
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from danube_connect_core.testing import ConnectorProcess, produce
from danube_connect_core.testing.toml_writer import write_connector_toml
from danube_connect_core.testing.waits import start_ready
from danube_sink_http.idempotency import record_key

TOPIC = "/default/orders"
N = 5000


def write_config(tmp_path: Path, broker_url: str, target_url: str) -> Path:
    return write_connector_toml(
        tmp_path / "http.toml",
        broker_url,
        "http-kill",
        retry={"max_retries": 10, "retry_backoff_ms": 50, "max_backoff_ms": 500},
        processing={"batch_size": 100},
        http={
            "url": target_url,
            "max_in_flight": 32,
            "topic_mappings": [{"topic": TOPIC, "subscription": "http-kill", "include_metadata": True}],
        },
    )


async def wait_distinct(target: Any, proc: ConnectorProcess, n: int, within: float) -> None:
    try:
        async with asyncio.timeout(within):
            while len({r.body["payload"]["i"] for r in target.requests}) < n:
                assert proc.proc is not None and proc.proc.poll() is None, proc.log_tail()
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"fewer than {n} distinct records delivered:\n{proc.log_tail()}") from None


@pytest.mark.slow
async def test_sigkill_mid_stream_then_restart_delivers_all_with_stable_keys(
    broker: Any, target: Any, tmp_path: Path
) -> None:
    config = write_config(tmp_path, broker.url, target.url)
    await produce(broker.url, TOPIC, [], partitions=4, reliable=True)
    first = ConnectorProcess("http", config)
    second = ConnectorProcess("http", config)
    try:
        await start_ready(first)
        producing = asyncio.create_task(
            produce(broker.url, TOPIC, [{"i": i} for i in range(N)], partitions=4, reliable=True)
        )
        await wait_distinct(target, first, 1000, within=120)
        first.kill()
        assert first.proc is not None and first.proc.returncode == -signal.SIGKILL
        await start_ready(second)
        await producing
        await wait_distinct(target, second, N, within=180)
        second.signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait) == 0, second.log_tail()
    finally:
        first.kill()
        second.kill()
    keys: dict[int, set[str | None]] = defaultdict(set)
    for r in target.requests:
        keys[r.body["payload"]["i"]].add(r.key)
        assert r.key == record_key(r.body["metadata"]["message_id"])
    assert sorted(keys) == list(range(N))  # every record at least once
    assert all(len(k) == 1 for k in keys.values())  # repeats carry the same key
