"""End to end in one process: real mosquitto -> MqttSource (SourceRuntime) -> embedded Danube broker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from danube_connect_core.testing import make_config, start_runtime
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
