"""The connector as real processes: the seed's TOML through the console script, and a flood past the rate
limit through ``danube-connect run webhook``. Both end with SIGTERM and exit code 0 (invariant 6)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from danube_connect_core.testing import ConnectorProcess
from danube_connect_core.testing.toml_writer import write_connector_toml
from danube_connect_core.testing.waits import logged_int, start_ready, wait_for_status

from .webhook_testsupport import OpenReader, payment

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
DEMO_KEY = "demo-api-key-e2e-12345"
EVENTS = ("payment.succeeded", "payment.failed", "payment.refunded", "payment.canceled")


class LogLines:
    """Collects a process's stderr lines; finds the webhook port it logged."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        assert proc.stderr is not None
        threading.Thread(target=self._read, args=(proc.stderr,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            self.lines.append(raw.decode("utf-8", "replace").rstrip())

    def webhook_port(self) -> int | None:
        return _logged_port(self.lines, "webhook_port")

    def metrics_port(self) -> int | None:
        return _logged_port(self.lines, "metrics_port")


def _logged_port(lines: list[str], name: str) -> int | None:
    for line in list(lines):
        if f'"{name}"' in line:
            return int(json.loads(line)[name])
    return None


async def wait_ready(port_of: Any, metrics_port_of: Any, proc: Any, tail: Any) -> int:
    """Wait (bounded) until the process logged its ports and the core's /ready (metrics port) answers
    200; returns the webhook port."""
    async with asyncio.timeout(60):
        while (port := port_of()) is None or (metrics_port := metrics_port_of()) is None:
            if proc.poll() is not None:
                raise AssertionError("connector exited early:\n" + tail())
            await asyncio.sleep(0.05)
    await wait_for_status(int(metrics_port), proc=proc)
    return int(port)


async def test_seed_config_runs_as_written_through_the_console_script(
    broker_factory: Any, open_reader: OpenReader
) -> None:
    broker = await broker_factory(namespaces=("default", "stripe"))
    script = Path(sys.executable).parent / "danube-source-webhook"
    env = {
        **os.environ,
        "DANUBE_SERVICE_URL": broker.url,
        "WEBHOOK_PORT": "0",
        "METRICS_PORT": "0",
        "WEBHOOK_API_KEY": DEMO_KEY,
    }
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once; its output is read by a thread
        [str(script), "--config", str(CONFIG_DIR / "webhook-connector.toml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    logs = LogLines(proc)
    try:
        port = await wait_ready(
            logs.webhook_port, logs.metrics_port, proc, lambda: "\n".join(logs.lines[-30:])
        )
        # the non-reliable partitioned topic drops what nobody subscribed to: subscribe first
        reader = await open_reader(broker.url, "/stripe/payments", "surrealdb-payment-sink", dedupe=False)
        url = f"http://127.0.0.1:{port}/webhooks/stripe/payments"
        rng = random.Random(7)
        sent: Counter[str] = Counter()
        async with aiohttp.ClientSession(headers={"x-api-key": DEMO_KEY}) as session:
            # what send-webhook.sh does: 100 random payment events
            for i in range(100):
                event = rng.choice(EVENTS)
                async with session.post(url, json=payment(i, event=event)) as resp:
                    assert resp.status == 200, await resp.text()
                sent[event] += 1
            async with session.post(url, json={"event": "payment.succeeded"}) as resp:
                assert resp.status == 422
            async with session.post(url, json=payment(0), headers={"x-api-key": "nope"}) as resp:
                assert resp.status == 401
        await reader.take(100)
        got = Counter(p["event"] for p in reader.payloads())
        assert got == sent
        assert {m.partition for m in reader.messages} == {0, 1, 2, 3}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 60) == 0
        assert not any(DEMO_KEY in line for line in logs.lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
async def test_flood_past_the_rate_limit_gets_429_and_the_process_stays_healthy(
    broker_factory: Any, open_reader: OpenReader, tmp_path: Path
) -> None:
    broker = await broker_factory()
    topic = "/default/limited"
    endpoint = {"danube_topic": topic, "reliable_dispatch": True}
    config = write_connector_toml(
        tmp_path / "limited.toml",
        broker.url,
        "webhook-limited",
        webhook={
            "host": "127.0.0.1",
            "port": 0,
            "auth": {"type": "none"},
            "endpoints": [
                {"path": "/limited", **endpoint, "rate_limit": {"rate_per_s": 2, "burst": 10}},
                {"path": "/open", **endpoint},
            ],
        },
    )
    process = ConnectorProcess("webhook", config).start()
    try:
        await start_ready(process)
        port = await asyncio.to_thread(logged_int, process, "webhook_port")
        reader = await open_reader(broker.url, topic)
        base = f"http://127.0.0.1:{port}"
        accepted: list[int] = []
        limited = 0
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:

            async def one(i: int) -> None:
                nonlocal limited
                async with session.post(f"{base}/limited", json={"seq": i}) as resp:
                    body = await resp.json()
                    if resp.status == 200:
                        accepted.append(i)
                    else:
                        assert resp.status == 429, body
                        assert body["error"] == "rate_limited"
                        assert int(resp.headers["Retry-After"]) >= 1
                        limited += 1

            await asyncio.gather(*(one(i) for i in range(200)))
            elapsed = time.monotonic() - started
            assert limited > 0
            assert 10 <= len(accepted) <= 10 + 2 * (elapsed + 1)  # burst plus the refill, no more
            async with session.post(f"{base}/open", json={"seq": "end"}) as resp:
                assert resp.status == 200
        await reader.until(lambda msgs: any(b'"end"' in m.payload for m in msgs))
        seqs = [orjson.loads(m.payload)["seq"] for m in reader.messages]
        assert sorted(seqs[:-1]) == sorted(accepted) and seqs[-1] == "end"
        core_port = process.metrics_port()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{core_port}/health") as resp:
                assert resp.status == 200
            async with session.get(f"http://127.0.0.1:{core_port}/ready") as resp:
                assert resp.status == 200
            async with session.get(f"http://127.0.0.1:{core_port}/metrics") as resp:
                text = await resp.text()
        labels = 'connector="webhook-limited",endpoint="/limited",status="429"'
        line = f"danube_webhook_requests_total{{{labels}}} {limited:.1f}"
        assert line in text
        process.signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0
    finally:
        process.kill()


@pytest.mark.slow
async def test_sigterm_during_a_stream_loses_no_acknowledged_event(
    broker_factory: Any, open_reader: OpenReader, tmp_path: Path
) -> None:
    broker = await broker_factory()
    topic = "/default/draining"
    endpoint = {"path": "/in", "danube_topic": topic, "partitions": 2, "reliable_dispatch": True}
    config = write_connector_toml(
        tmp_path / "draining.toml",
        broker.url,
        "webhook-draining",
        webhook={"host": "127.0.0.1", "port": 0, "auth": {"type": "none"}, "endpoints": [endpoint]},
    )
    process = ConnectorProcess("webhook", config).start()
    try:
        await start_ready(process)
        port = await asyncio.to_thread(logged_int, process, "webhook_port")
        reader = await open_reader(broker.url, topic)
        ok: list[int] = []
        other: Counter[int] = Counter()
        counter = 0
        stop = asyncio.Event()

        async def sender(session: aiohttp.ClientSession) -> None:
            nonlocal counter
            while not stop.is_set():
                counter += 1
                n = counter
                try:
                    async with session.post(f"http://127.0.0.1:{port}/in", json={"seq": n}) as resp:
                        await resp.read()
                        if resp.status == 200:
                            ok.append(n)
                        else:
                            assert resp.status == 503, resp.status
                            other[resp.status] += 1
                except aiohttp.ClientError:
                    other[0] += 1  # the server closed: connection refused or reset
                    await asyncio.sleep(0.01)

        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(sender(session)) for _ in range(16)]
            async with asyncio.timeout(60):
                while len(ok) < 200:  # noqa: ASYNC110 - polling a list filled by the senders
                    await asyncio.sleep(0.01)
            process.signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 60)
            stop.set()
            await asyncio.gather(*tasks)
        assert code == 0
        # every event answered 2xx before and during the drain is on the topic
        await reader.until(lambda _: set(ok) <= {orjson.loads(m.payload)["seq"] for m in reader.messages})
        received = [orjson.loads(m.payload)["seq"] for m in reader.messages]
        assert set(ok) <= set(received) and len(received) == len(set(received))
        assert set(received) <= set(range(1, counter + 1))
    finally:
        process.kill()
