"""SIGTERM of every source under load (invariant 6): real connector processes, real external systems.

Each source runs as ``danube-connect run <source>`` while its external system keeps producing; SIGTERM
must drain (stop intake, finish the publishes in flight, commit/acknowledge upstream) and exit 0 within
the shutdown timeout (a drain that outlasts it exits 1). Then a consumer reading the Danube topic shows
that nothing in flight was lost:

- webhook: every request answered 2xx is on the topic once; requests in flight at SIGTERM still get
  their 2xx after the drain; requests after the drain started get 503 + Retry-After or a refused
  connection, never a 2xx; /ready answers 503 from the moment SIGTERM arrives.
- mqtt: QoS 1 messages keep being published to mosquitto while the connector stops and restarts; with the
  persistent session every one of them ends up on the topic (duplicates allowed, counted).
- postgres-cdc: transactions keep committing while the connector stops and restarts; every committed row
  change ends up on the topic (at-least-once: duplicates allowed, counted).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from danube_connect_core.testing import ConnectorProcess, http_get, process_env
from danube_connect_core.testing.conformance import start_ready, wait_until
from danube_connect_core.testing.toml_writer import write_connector_toml
from danube_connect_core.testing.waits import logged_int
from danube_embedded_broker.testing import BrokerProcess
from danube_source_mqtt.testing import DanubeCollector, Mosquitto, Publisher

from tests.e2e.pipeline import API_KEY, BROKER_ARGS, PATH, webhook_toml
from tests.faults.webhook_load import Load, payment, stop_process

pytestmark = pytest.mark.slow


def payloads(collector: DanubeCollector) -> list[dict[str, Any]]:
    """The payload of every message stored on the collector's topic (once per stored message)."""
    return [orjson.loads(m.payload) for m in collector.messages]


async def wait_collected(
    collector: DanubeCollector, want: set[Any], key: Any, what: str, within: float = 90.0
) -> Counter[Any]:
    """Until every key in ``want`` is on the topic; returns how often each key is there."""

    async def complete() -> bool:
        return want <= {key(p) for p in payloads(collector)}

    try:
        await wait_until(complete, what, within=within, interval=0.1)
    except AssertionError:
        missing = sorted(want - {key(p) for p in payloads(collector)})
        raise AssertionError(f"{what}: {len(missing)} missing, e.g. {missing[:10]}") from None
    await asyncio.sleep(1.0)  # anything delivered twice arrives right behind the rest
    return Counter(key(p) for p in payloads(collector))


@dataclass(frozen=True)
class Restart:
    drain_s: float  # from SIGTERM to the exit of the first process
    produced_while_away: int  # what the external system produced while no connector ran


async def sigterm_under_load_then_restart(
    first: ConnectorProcess,
    second: ConnectorProcess,
    collector: DanubeCollector,
    at_least: int,
    produced: Callable[[], int],
) -> Restart:
    """With the stream running: once ``at_least`` messages are on the topic, SIGTERM ``first``, which must
    exit 0 (drained within its shutdown timeout, invariant 6); start ``second`` (the same configuration)
    and let the stream go on into it for a second. ``produced`` counts what the external system produced."""

    async def flowing() -> bool:
        return len(collector.messages) >= at_least

    await wait_until(flowing, f"{at_least} messages on {collector.topic}", within=60, proc=first)
    started = time.monotonic()
    assert await stop_process(first) == 0, first.log_tail()
    drain_s = time.monotonic() - started
    produced_at_exit = produced()
    await start_ready(second, within=90)
    restart = Restart(drain_s, produced() - produced_at_exit)
    await asyncio.sleep(1.0)
    return restart


# -- webhook ---------------------------------------------------------------------------------------------


async def test_webhook_sigterm_with_requests_in_flight(tmp_path: Path) -> None:
    """The broker is paused (SIGSTOP) so that every client's request is in flight, waiting for its
    publish, when SIGTERM arrives; then it resumes. Nothing answered 2xx may be missing from the topic."""
    broker = BrokerProcess(tmp_path / "broker", args=BROKER_ARGS)
    url = await asyncio.to_thread(broker.start)
    webhook = ConnectorProcess(
        "webhook", webhook_toml(tmp_path / "webhook"), env={**process_env(url), "WEBHOOK_API_KEY": API_KEY}
    )
    load: Load | None = None
    collector: DanubeCollector | None = None
    paused = False
    try:
        await start_ready(webhook, within=90)
        port = logged_int(webhook, "webhook_port")
        metrics_port = logged_int(webhook, "metrics_port")
        collector = await DanubeCollector(url, "/stripe/payments", "sigterm-check").start()
        load = Load(port).start()

        async def flowing() -> bool:
            return len(load.with_status(200)) >= 100

        await wait_until(flowing, "100 events accepted", within=60, proc=webhook)
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)
        paused = True
        await asyncio.sleep(1.0)  # every client now waits for a publish the broker does not answer yet
        webhook.signal(signal.SIGTERM)
        sigterm_at = time.monotonic()

        async def not_ready() -> bool:
            return (await asyncio.to_thread(http_get, metrics_port, "/ready"))[0] == 503

        # while the drain waits for the paused broker: not ready, and a new event is refused
        await wait_until(not_ready, "/ready answering 503 after SIGTERM", within=10, proc=webhook)
        draining_at = time.monotonic()
        _, body = await asyncio.to_thread(http_get, metrics_port, "/ready")
        assert orjson.loads(body)["checks"]["runtime"] == {"ok": True, "detail": "shutting down"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{port}{PATH}", json=payment(-1), headers={"x-api-key": API_KEY}
            ) as resp,
        ):
            refused = await resp.json()
            assert resp.status == 503 and int(resp.headers["Retry-After"]) >= 1, refused
            assert "shutting down" in refused["message"]
        assert webhook.proc is not None and webhook.proc.poll() is None  # still draining
        os.kill(broker.pid, signal.SIGCONT)
        paused = False
        assert await asyncio.to_thread(webhook.wait, 60) == 0, webhook.log_tail()
        await load.stop()

        answers = load.answers
        ok = {a.seq for a in load.with_status(200)}
        # no other answer than 2xx, 503 with Retry-After, or no connection once the server closed
        assert [a for a in answers if a.status not in (0, 200, 503)] == []
        assert [a for a in answers if a.status == 503 and not (a.retry_after or "").isdigit()] == []
        unanswered = [a for a in answers if a.status == 0]
        closed = ("ClientConnectorError", "ServerDisconnectedError", "ClientOSError")
        assert [a.error for a in unanswered if not a.error.startswith(closed)] == []
        in_flight_done = [a for a in load.with_status(200) if a.sent < sigterm_at < a.answered]
        assert in_flight_done, "no request in flight at SIGTERM was answered 2xx after the drain"
        after_drain = [a for a in answers if a.sent > draining_at]
        assert after_drain and [a for a in after_drain if a.status == 200] == []

        stored = await wait_collected(
            collector, ok, lambda p: p["timestamp"], "every 2xx'd event on the topic"
        )
        assert {k: n for k, n in stored.items() if n != 1} == {}
        assert set(stored) <= {a.seq for a in answers}  # not the refused probe (-1), nothing else
        print(
            f"\nwebhook SIGTERM: {len(answers)} requests, {len(ok)} answered 2xx "
            f"({len(in_flight_done)} of them in flight at SIGTERM), "
            f"{len(load.with_status(503))} answered 503, "
            f"{len(unanswered)} refused connections; {len(stored)} events on the topic"
        )
    finally:
        if paused and broker.pid is not None:
            os.kill(broker.pid, signal.SIGCONT)
        if load is not None:
            await load.stop()
        if collector is not None:
            await collector.close()
        await stop_process(webhook)
        await asyncio.to_thread(broker.stop)


# -- mqtt ------------------------------------------------------------------------------------------------

MQTT_TOPIC = "/default/mqtt-sigterm"


def write_mqtt_config(path: Path, url: str, mqtt_port: int) -> Path:
    path.write_text(
        f"""
danube_service_url = "{url}"
connector_name = "mqtt-sigterm"

[processing]
metrics_port = 0
shutdown_timeout_ms = 20000

[mqtt]
broker_host = "127.0.0.1"
broker_port = {mqtt_port}
client_id = "mqtt-sigterm"
clean_session = false   # the persistent session keeps what arrives while the connector is away
reconnect_min_delay_ms = 100
reconnect_max_delay_ms = 1000

[[mqtt.topic_mappings]]
mqtt_topic = "load/#"
danube_topic = "{MQTT_TOPIC}"
partitions = 2
qos = 1
"""
    )
    return path


class SteadyPublisher:
    """QoS 1 messages ``{"id": n}`` to ``load/t<n % 4>`` from a thread, until :meth:`stop`; every one
    acknowledged by mosquitto (PUBACK) before :meth:`stop` returns."""

    def __init__(self, port: int) -> None:
        self.client = Publisher(port, client_id="sigterm-load")
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        infos = []
        while not self._stop.is_set():
            infos.append(
                self.client.publish(f"load/t{self.count % 4}", orjson.dumps({"id": self.count}), qos=1)
            )
            self.count += 1
            if self.count % 20 == 0:
                infos[-1].wait_for_publish(30)
                time.sleep(0.01)  # a steady stream (about 1,500 messages a second at most)
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()

    def stop(self) -> int:
        """Stop publishing; returns how many messages were published (and acknowledged by mosquitto)."""
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive()
        self.client.close()
        return self.count


async def test_mqtt_sigterm_mid_stream_then_restart_loses_no_qos1_message(
    mosquitto: Mosquitto, broker_factory: Any, tmp_path: Path
) -> None:
    broker = await broker_factory()
    config = write_mqtt_config(tmp_path / "mqtt.toml", broker.url, mosquitto.port)
    first = ConnectorProcess("mqtt", config, env={"LOG_FORMAT": "json"})
    second = ConnectorProcess("mqtt", config, env={"LOG_FORMAT": "json"})
    publisher: SteadyPublisher | None = None
    collector: DanubeCollector | None = None
    try:
        await start_ready(first, within=90)
        collector = await DanubeCollector(broker.url, MQTT_TOPIC, "sigterm-check").start()
        publisher = await asyncio.to_thread(SteadyPublisher, mosquitto.port)

        steady = publisher
        restart = await sigterm_under_load_then_restart(first, second, collector, 500, lambda: steady.count)
        total = await asyncio.to_thread(publisher.stop)
        publisher = None

        stored = await wait_collected(collector, set(range(total)), lambda p: p["id"], "every QoS 1 message")
        assert set(stored) == set(range(total))
        duplicates = sum(n - 1 for n in stored.values())
        print(
            f"\nmqtt SIGTERM (drained and exited in {restart.drain_s:.1f} s): {total} QoS 1 messages "
            f"({restart.produced_while_away} while no connector ran), "
            f"0 lost, {duplicates} on the topic twice (at-least-once), "
            f"{collector.redelivered} Danube redeliveries to the checker ignored"
        )
        assert await stop_process(second) == 0, second.log_tail()
    finally:
        if publisher is not None:
            await asyncio.to_thread(publisher.stop)
        if collector is not None:
            await collector.close()
        for proc in (first, second):
            await stop_process(proc)


# -- postgres-cdc ----------------------------------------------------------------------------------------

CDC_TOPIC = "/default/cdc-sigterm"


async def write_transactions(conn: Any, stop: asyncio.Event, done: list[int]) -> None:
    """Transaction t inserts rows 10t..10t+4 and updates row 10(t-1) to txn t; appends t once committed."""
    t = 0
    while not stop.is_set():
        async with conn.transaction():
            for i in range(5):
                await conn.execute("INSERT INTO orders VALUES ($1, $2)", 10 * t + i, t)
            if t > 0:
                await conn.execute("UPDATE orders SET txn = $1 WHERE id = $2", t, 10 * (t - 1))
        done.append(t)
        t += 1
        await asyncio.sleep(0.01)


def expected_changes(transactions: list[int]) -> set[tuple[str, int, int]]:
    """(op, id, txn after the change) of every row change the committed transactions made."""
    want = {("c", 10 * t + i, t) for t in transactions for i in range(5)}
    return want | {("u", 10 * (t - 1), t) for t in transactions if t > 0}


async def test_postgres_cdc_sigterm_mid_stream_then_restart_loses_no_change(
    pg_db: Any, broker_factory: Any, tmp_path: Path
) -> None:
    broker = await broker_factory()
    conn = await pg_db.connect()
    await conn.execute("CREATE TABLE orders (id int PRIMARY KEY, txn int)")
    config = write_connector_toml(
        tmp_path / "cdc.toml",
        broker.url,
        "cdc-sigterm",
        processing={"poll_interval_ms": 20, "log_level": "info"},
        postgres={
            "dsn": pg_db.dsn,
            "max_changes_per_poll": 50,
            "poll_interval_ms": 20,
            "table_mappings": [{"table": "public.orders", "danube_topic": CDC_TOPIC}],
        },
    )
    first = ConnectorProcess("postgres-cdc", config, env={"LOG_FORMAT": "json"})
    second = ConnectorProcess("postgres-cdc", config, env={"LOG_FORMAT": "json"})
    stop_writing = asyncio.Event()
    committed: list[int] = []
    writer: asyncio.Task[None] | None = None
    collector: DanubeCollector | None = None
    try:
        await start_ready(first, within=90)
        collector = await DanubeCollector(broker.url, CDC_TOPIC, "sigterm-check").start()
        writer = asyncio.create_task(write_transactions(conn, stop_writing, committed))

        restart = await sigterm_under_load_then_restart(first, second, collector, 200, lambda: len(committed))
        stop_writing.set()
        await writer
        writer = None

        def change(p: dict[str, Any]) -> tuple[str, int, int]:
            return p["op"], p["after"]["id"], p["after"]["txn"]

        want = expected_changes(committed)
        stored = await wait_collected(collector, want, change, "every committed row change")
        assert set(stored) == want
        duplicates = sum(n - 1 for n in stored.values())
        print(
            f"\npostgres-cdc SIGTERM (drained and exited in {restart.drain_s:.1f} s): {len(committed)} "
            f"transactions ({restart.produced_while_away} while no connector ran), {len(want)} row changes, "
            f"0 lost, {duplicates} on the topic twice (at-least-once)"
        )
        assert await stop_process(second) == 0, second.log_tail()
    finally:
        stop_writing.set()
        if writer is not None:
            await writer
        if collector is not None:
            await collector.close()
        for proc in (first, second):
            await stop_process(proc)
        await conn.close()
