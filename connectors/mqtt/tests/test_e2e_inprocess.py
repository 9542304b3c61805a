"""End to end in one process: real mosquitto -> MqttSource (SourceRuntime) -> embedded Danube broker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from danube_connect_core.testing import http_get, make_config, produce, start_runtime
from danube_source_mqtt.connector import MqttSource
from danube_source_mqtt.settings import MqttSettings
from danube_source_mqtt.testing import DanubeCollector, Mosquitto, Publisher, wait_ready


def settings(mosq: Mosquitto, **overrides: Any) -> MqttSettings:
    data: dict[str, Any] = {
        "broker_host": "127.0.0.1",
        "broker_port": mosq.port,
        "client_id": "danube-mqtt-test",
        "topic_mappings": [
            {"mqtt_topic": "sensors/+/temp", "danube_topic": "/iot/temperature", "qos": 1},
            {"mqtt_topic": "devices/#", "danube_topic": "/iot/devices", "qos": 1, "partitions": 2},
        ],
    }
    data.update(overrides)
    return MqttSettings.model_validate(data)


async def test_messages_reach_their_topics_with_attributes(
    mosquitto: Mosquitto, broker_factory: Any, tmp_path: Path
) -> None:
    broker = await broker_factory(namespaces=("default", "iot"))
    url = broker.url
    config = make_config(url, "mqtt-e2e", settings(mosquitto))
    running = await start_runtime(MqttSource(), config)
    await wait_ready(running.port)
    temps_c = await DanubeCollector(url, "/iot/temperature", "t").start()
    devices_c = await DanubeCollector(url, "/iot/devices", "d").start()
    pub = await asyncio.to_thread(Publisher, mosquitto.port)
    try:
        items = [(f"sensors/s{i % 3}/temp", orjson.dumps({"i": i})) for i in range(30)]
        items += [(f"devices/d{i % 4}/state", f"text {i}".encode()) for i in range(20)]
        await asyncio.to_thread(pub.publish_all, items)
        temps = await temps_c.wait_for(30)
        devices = await devices_c.wait_for(20)
    finally:
        await asyncio.to_thread(pub.close)
        code = await running.stop()
        await temps_c.close()
        await devices_c.close()
    assert code == 0
    got = sorted(orjson.loads(m.payload)["i"] for m in temps)
    assert got == list(range(30))
    first = temps[0]
    assert first.attributes["mqtt.qos"] == "1"
    assert first.attributes["mqtt.retain"] == "false"
    assert first.attributes["mqtt.topic"].startswith("sensors/")
    assert sorted(m.payload for m in devices) == sorted(f"text {i}".encode() for i in range(20))


async def test_order_per_mqtt_topic_with_a_small_pending_bound(
    mosquitto: Mosquitto, broker_factory: Any
) -> None:
    broker = await broker_factory(namespaces=("default", "iot"))
    s = settings(mosquitto, max_pending_messages=4)
    running = await start_runtime(MqttSource(), make_config(broker.url, "mqtt-order", s))
    await wait_ready(running.port)
    collector = await DanubeCollector(broker.url, "/iot/temperature", "order").start()
    pub = await asyncio.to_thread(Publisher, mosquitto.port)
    try:
        items = [(f"sensors/s{i % 3}/temp", orjson.dumps({"i": i})) for i in range(150)]
        await asyncio.to_thread(pub.publish_all, items)
        got = await collector.wait_for(150)
    finally:
        await asyncio.to_thread(pub.close)
        source = running.runtime.connector
        assert await running.stop() == 0
        await collector.close()
    for sensor in range(3):
        seq = [
            orjson.loads(m.payload)["i"]
            for m in got
            if m.attributes["mqtt.topic"] == f"sensors/s{sensor}/temp"
        ]
        assert seq == list(range(sensor, 150, 3))
    assert source.intake.peak_pending <= 4 + 20  # the bound, plus what was already in the socket buffer


async def test_invalid_payloads_go_to_the_dead_letter_topic(
    mosquitto: Mosquitto, broker_factory: Any, tmp_path: Path
) -> None:
    broker = await broker_factory(namespaces=("default", "iot"))
    schema = tmp_path / "temp.json"
    schema.write_text('{"type": "object", "required": ["i"], "properties": {"i": {"type": "integer"}}}')
    config = make_config(
        broker.url,
        "mqtt-dlq",
        settings(mosquitto),
        schemas=[
            {
                "topic": "/iot/temperature",
                "subject": "temp",
                "schema_type": "json_schema",
                "schema_file": schema,
            }
        ],
    )
    running = await start_runtime(MqttSource(), config)
    await wait_ready(running.port)
    good = await DanubeCollector(broker.url, "/iot/temperature", "good").start()
    dlq = await DanubeCollector(broker.url, "/default/mqtt-dlq-dlq", "dlq").start()
    pub = await asyncio.to_thread(Publisher, mosquitto.port)
    try:
        items = [
            ("sensors/a/temp", b'{"i": 1}'),
            ("sensors/a/temp", b"not json"),
            ("sensors/a/temp", b'{"i": "two"}'),
            ("sensors/a/temp", b'{"i": 3}'),
        ]
        await asyncio.to_thread(pub.publish_all, items)
        ok = await good.wait_for(2)
        bad = await dlq.wait_for(2)
    finally:
        await asyncio.to_thread(pub.close)
        assert await running.stop() == 0
        await good.close()
        await dlq.close()
    assert [orjson.loads(m.payload)["i"] for m in ok] == [1, 3]
    assert sorted(m.payload for m in bad) == sorted([b'{"i": "two"}', b"not json"])
    for m in bad:
        assert m.attributes["error.kind"] == "invalid_data"
        assert m.attributes["error.topic"] == "/iot/temperature"
        assert m.attributes["mqtt.topic"] == "sensors/a/temp"
    reasons = {m.payload: m.attributes["error.reason"] for m in bad}
    assert "not valid JSON" in reasons[b"not json"]
    assert "schema violation" in reasons[b'{"i": "two"}']


async def test_an_invalid_message_is_acked_only_after_its_dead_letter(
    mosquitto: Mosquitto, broker_factory: Any
) -> None:
    """The core pipeline dead-letters an unreadable MQTT message; the PUBACK waits for the dead letter's
    ack: with a dead-letter topic the broker refuses, the connector exits 1 without acknowledging, and
    once restarted with a usable one the broker redelivers the message (persistent session) and it is
    dead-lettered."""
    broker = await broker_factory(namespaces=("default", "iot"))
    s = settings(
        mosquitto,
        topic_mappings=[
            {
                "mqtt_topic": "sensors/+/temp",
                "danube_topic": "/iot/temperature",
                "qos": 1,
                "payload_format": "json",
            }
        ],
    )
    retry = {"max_retries": 1, "retry_backoff_ms": 10, "max_backoff_ms": 10}
    refused = make_config(
        broker.url, "mqtt-dlq-ack", s, errors={"dead_letter_topic": "not a topic"}, retry=retry
    )
    first = MqttSource()
    running = await start_runtime(first, refused)
    await wait_ready(running.port)
    pub = await asyncio.to_thread(Publisher, mosquitto.port)
    try:
        await asyncio.to_thread(pub.publish_all, [("sensors/a/temp", b"not json")])
        assert await running.wait(within=60) == 1  # the dead letter was never acknowledged
        assert first.intake is not None and first.intake.received == 1
        assert first.intake.dead_lettered == 0
        await produce(broker.url, "/default/mqtt-dlq-ack-dlq", [])  # the topic, for the collector
        dlq = await DanubeCollector(broker.url, "/default/mqtt-dlq-ack-dlq", "dlq").start()
        running = await start_runtime(MqttSource(), make_config(broker.url, "mqtt-dlq-ack", s, retry=retry))
        (letter,) = await dlq.wait_for(1)
        assert await running.stop() == 0
        await dlq.close()
    finally:
        await asyncio.to_thread(pub.close)
    assert letter.payload == b"not json"
    assert "not valid JSON" in letter.attributes["error.reason"]


async def test_ready_follows_the_mqtt_connection(mosquitto: Mosquitto, broker_factory: Any) -> None:
    broker = await broker_factory(namespaces=("default", "iot"))
    s = settings(mosquitto, reconnect_min_delay_ms=50, reconnect_max_delay_ms=200)
    config = make_config(broker.url, "mqtt-ready", s, processing={"health_check_interval_ms": 50})
    running = await start_runtime(MqttSource(), config)
    try:
        await wait_ready(running.port)
        await asyncio.to_thread(mosquitto.stop)
        await wait_ready(running.port, ready=False)
        status, body = await asyncio.to_thread(http_get, running.port, "/ready")
        assert status == 503 and "MQTT" in body
        await asyncio.to_thread(mosquitto.start)
        await wait_ready(running.port)
    finally:
        assert await running.stop() == 0
