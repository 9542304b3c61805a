"""Stripe-style payments through real processes: broker, webhook source, SurrealDB sink (surrealkv).

The sink runs example_e2e/surrealdb-sink-connector.toml (the product documents' TOML) with only the URL
adjusted to an embedded surrealkv store; the webhook runs example_e2e/webhook-connector.toml on a free port.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from danube_connect_core.testing import ConnectorProcess, http_get, process_env
from danube_connect_core.testing.waits import logged_int, start_ready
from danube_embedded_broker.testing import BrokerProcess

from .pipeline import (
    API_KEY,
    BROKER_ARGS,
    EVENTS,
    ROOT,
    post_payments,
    read_store,
    seed_sink_toml,
    stored_counts,
    webhook_toml,
)


def payments(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {"event": rng.choice(EVENTS), "amount": rng.randint(0, 10**6), "currency": "EUR", "timestamp": i}
        for i in range(n)
    ]


def metric_total(port: int, name: str) -> float:
    _, text = http_get(port, "/metrics")
    return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(name + "{"))


async def start_webhook(tmp_path: Path, broker_url: str) -> tuple[ConnectorProcess, int]:
    env = {**process_env(broker_url), "WEBHOOK_API_KEY": API_KEY}
    webhook = ConnectorProcess("webhook", webhook_toml(tmp_path / "webhook"), env=env).start()
    port = logged_int(webhook, "webhook_port")
    await start_ready(webhook)
    return webhook, port


async def start_sink(config: Path, broker_url: str, query_api: bool) -> tuple[ConnectorProcess, int]:
    sink = ConnectorProcess("surrealdb", config, env=process_env(broker_url)).start()
    await start_ready(sink)
    return sink, logged_int(sink, "query_api_port") if query_api else 0


def parse_send_output(text: str) -> dict[str, int]:
    found = dict(re.findall(r"^  (payment\.\w+)\s+(\d+)$", text, re.MULTILINE))
    return {k: int(v) for k, v in found.items() if int(v)}


async def test_seed_sink_toml_runs_on_surrealkv_fed_by_send_webhook_sh(tmp_path: Path) -> None:
    """The product documents' SurrealDB TOML (URL -> surrealkv) loads and runs; example_e2e/send-webhook.sh
    sends 40 payments and its per-type counts are exactly what SurrealDB holds."""
    store = tmp_path / "surreal"
    config = tmp_path / "surrealdb-sink-connector.toml"
    config.write_text(seed_sink_toml(store, query_api=False))
    with BrokerProcess(tmp_path / "broker", args=BROKER_ARGS) as broker:
        webhook, web_port = await start_webhook(tmp_path, broker.url)
        sink, _ = await start_sink(config, broker.url, query_api=False)
        try:
            script = await asyncio.create_subprocess_exec(
                "bash",
                str(ROOT / "example_e2e" / "send-webhook.sh"),
                env={
                    **os.environ,
                    "COUNT": "40",
                    "WEBHOOK_URL": f"http://127.0.0.1:{web_port}/webhooks/stripe/payments",
                },
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await script.communicate()
            assert script.returncode == 0, err.decode()
            sent = parse_send_output(out.decode())
            assert sum(sent.values()) == 40, out.decode()
            metrics_port = logged_int(sink, "metrics_port")
            while (
                await asyncio.to_thread(metric_total, metrics_port, "danube_connector_messages_sent_total")
                < 40
            ):
                assert sink.proc is not None and sink.proc.poll() is None, sink.log_tail()
                await asyncio.sleep(0.05)
            assert any("password is written in the configuration file" in line for line in sink.lines)
            assert not any('"root"' in line for line in sink.lines)  # the password never reaches a log
        finally:
            sink.signal(signal.SIGTERM)
            webhook.signal(signal.SIGTERM)
            assert sink.wait(60) == 0, sink.log_tail()
            assert webhook.wait(60) == 0, webhook.log_tail()
    total, groups = await read_store(store)
    assert total == 40
    assert groups == sent


async def test_1000_concurrent_webhooks_sink_killed_and_restarted(tmp_path: Path) -> None:
    """1,000 valid events -> exactly 1,000 rows, across a SIGKILL of the sink in the middle (invariant 2)."""
    store = tmp_path / "surreal"
    config = tmp_path / "surrealdb-sink-connector.toml"
    config.write_text(seed_sink_toml(store, query_api=True))
    sent = payments(1000, seed=2)
    with BrokerProcess(tmp_path / "broker", args=BROKER_ARGS) as broker:
        webhook, web_port = await start_webhook(tmp_path, broker.url)
        sink, query_port = await start_sink(config, broker.url, query_api=True)
        try:
            assert await post_payments(web_port, sent[:500]) == Counter({200: 500})
            while (await stored_counts(query_port))["total"] < 100:
                assert sink.proc is not None and sink.proc.poll() is None, sink.log_tail()
                await asyncio.sleep(0.02)
            sink.kill()  # SIGKILL: no drain, batches in flight are neither written completely nor acked
            # The rest arrives while the sink is down; the broker holds it (reliable topic).
            assert await post_payments(web_port, sent[500:]) == Counter({200: 500})
            sink, query_port = await start_sink(config, broker.url, query_api=True)
            while (body := await stored_counts(query_port))["total"] < 1000:
                assert sink.proc is not None and sink.proc.poll() is None, sink.log_tail()
                await asyncio.sleep(0.05)
            assert body["total"] == 1000
        finally:
            sink.signal(signal.SIGTERM)
            webhook.signal(signal.SIGTERM)
            assert sink.wait(60) == 0, sink.log_tail()
            assert webhook.wait(60) == 0, webhook.log_tail()
    total, groups = await read_store(store)
    assert total == 1000
    assert groups == dict(Counter(p["event"] for p in sent))
