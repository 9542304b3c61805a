"""MQTT 5 as real clients use it, against a real mosquitto and the embedded Danube broker: overlapping
subscriptions (one copy per matching subscription from mosquitto), JSON published byte for byte, repeated
user properties. Published with paho-mqtt and MQTT 5 properties."""

from __future__ import annotations

# ruff: noqa: ASYNC110 - polling counters that have no event to wait on
import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from danube_connect_core.testing import make_config, start_runtime
from danube_connect_core.testing.waits import settled
from danube_source_mqtt.connector import MqttSource
from danube_source_mqtt.settings import MqttSettings
from danube_source_mqtt.testing import DanubeCollector, Mosquitto, Publisher, wait_ready
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def overlapping(mosq: Mosquitto, protocol: str) -> MqttSettings:
    # The README's advice: specific filters first. "raw/#" wins for raw/...; "#" takes the rest.
    return MqttSettings.model_validate(
        {
            "broker_host": "127.0.0.1",
            "broker_port": mosq.port,
            "client_id": f"overlap-{protocol}",
            "protocol": protocol,
            "topic_mappings": [
                {"mqtt_topic": "raw/#", "danube_topic": "/iot/raw", "qos": 1},
                {"mqtt_topic": "#", "danube_topic": "/iot/all", "qos": 1},
            ],
        }
    )


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_overlapping_filters_publish_each_message_once_to_the_first_mapping(
    mosquitto: Mosquitto, broker_factory: Any, protocol: str
) -> None:
    broker = await broker_factory(namespaces=("default", "iot"))
    running = await start_runtime(
        MqttSource(), make_config(broker.url, f"overlap-{protocol[0]}", overlapping(mosquitto, protocol))
    )
    await wait_ready(running.port)
    raw = await DanubeCollector(broker.url, "/iot/raw", "raw").start()
    rest = await DanubeCollector(broker.url, "/iot/all", "all").start()
    pub = await asyncio.to_thread(Publisher, mosquitto.port, "overlap-pub", 5)
    source: MqttSource = running.runtime.connector
    try:
        items = [(f"raw/s{i % 3}", orjson.dumps({"i": i})) for i in range(60)]
        items += [(f"other/d{i % 2}", orjson.dumps({"i": i})) for i in range(60, 100)]
        # Interleaved, so dropped copies sit between published ones in the ack order.
        items.sort(key=lambda item: orjson.loads(item[1])["i"] % 7)
        await asyncio.to_thread(pub.publish_all, items)
        assert source.intake is not None
        router = source.intake._router
        async with asyncio.timeout(60):
            # Every copy mosquitto sends is either published or recognised as a duplicate copy.
            while source.intake.received < 100 or len(raw.messages) + len(rest.messages) < 100:
                await asyncio.sleep(0.02)
            # Every copy acknowledged, the dropped ones included (the ack order did not stall).
            while any(seq.waiting for seq in source.intake._sequencers.values()):
                await asyncio.sleep(0.02)
        intake = source.intake

        async def acked_now() -> int:
            return sum(seq.acked for seq in intake._sequencers.values())

        # A duplicate copy (MQTT 5, for "#") can still be on its way when every published message is in:
        # nothing is waiting then, yet the copy is neither counted nor acknowledged.
        acked = await settled(acked_now, lambda n: n >= (160 if protocol == "5" else 100))
        copies = source.intake.received + router.duplicate_copies
    finally:
        await asyncio.to_thread(pub.close)
        code = await running.stop()
        await raw.close()
        await rest.close()
    assert code == 0
    assert sorted(orjson.loads(m.payload)["i"] for m in raw.messages) == list(range(60))
    assert sorted(orjson.loads(m.payload)["i"] for m in rest.messages) == list(range(60, 100))
    assert all(m.attributes["mqtt.topic"].startswith("raw/") for m in raw.messages)
    assert source.intake.received == 100
    if protocol == "5":
        # mosquitto sent a second copy of every raw/ message (for "#"): acknowledged, not published.
        assert router.duplicate_copies == 60 and copies == 160 and acked == 160
    else:
        assert router.duplicate_copies == 0 and acked == 100


def json_settings(mosq: Mosquitto) -> MqttSettings:
    return MqttSettings.model_validate(
        {
            "broker_host": "127.0.0.1",
            "broker_port": mosq.port,
            "client_id": "exact-json",
            "protocol": "5",
            "topic_mappings": [
                {"mqtt_topic": "free/#", "danube_topic": "/iot/free", "qos": 1},
                {"mqtt_topic": "checked/#", "danube_topic": "/iot/checked", "qos": 1},
            ],
        }
    )


EXACT = [
    b'{"v": 1.50}',
    b'{"v": 1E3, "w": -0.0}',
    b'{"v": 0.10000000000000000000000000001}',
    b'{"v": 123456789012345678901234567890.5, "n": 123456789012345678901234567890}',
    b'{"v": 1, "v": 2}',
    b'  [1.0, "\\u00e9", {"x": null}]\n',
]


async def test_auto_json_is_published_byte_for_byte_and_user_properties_keep_every_value(
    mosquitto: Mosquitto, broker_factory: Any, tmp_path: Path
) -> None:
    broker = await broker_factory(namespaces=("default", "iot"))
    schema = tmp_path / "checked.json"
    schema.write_text('{"type": "object", "required": ["v"], "properties": {"v": {"type": "number"}}}')
    config = make_config(
        broker.url,
        "exact-json",
        json_settings(mosquitto),
        schemas=[
            {
                "topic": "/iot/checked",
                "subject": "checked",
                "schema_type": "json_schema",
                "schema_file": schema,
            }
        ],
    )
    running = await start_runtime(MqttSource(), config)
    await wait_ready(running.port)
    free = await DanubeCollector(broker.url, "/iot/free", "free").start()
    checked = await DanubeCollector(broker.url, "/iot/checked", "checked").start()
    dlq = await DanubeCollector(broker.url, "/default/exact-json-dlq", "dlq").start()
    pub = await asyncio.to_thread(Publisher, mosquitto.port, "json-pub", 5)
    try:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = ("site", "north")
        props.UserProperty = ("tag", "a")
        props.UserProperty = ("tag", "b")
        props.UserProperty = ("tag", "a")
        props.ContentType = "application/json"
        infos = [pub.publish("free/x", p, properties=props) for p in EXACT]
        infos += [pub.publish("checked/x", p) for p in EXACT[:5]]
        infos.append(pub.publish("checked/x", b'{"v": "not a number"}'))
        for info in infos:
            await asyncio.to_thread(info.wait_for_publish, 30)
        got_free = await free.wait_for(len(EXACT))
        got_checked = await checked.wait_for(5)
        bad = await dlq.wait_for(1)
    finally:
        await asyncio.to_thread(pub.close)
        assert await running.stop() == 0
        for c in (free, checked, dlq):
            await c.close()
    assert [m.payload for m in got_free] == EXACT
    assert [m.payload for m in got_checked] == EXACT[:5]  # validated, still as received
    assert [m.payload for m in bad] == [b'{"v": "not a number"}']
    attrs = got_free[0].attributes
    assert attrs["mqtt.user.site"] == "north"
    assert orjson.loads(attrs["mqtt.user.tag"]) == ["a", "b", "a"]
    assert orjson.loads(attrs["mqtt.user_properties"]) == [
        ["site", "north"],
        ["tag", "a"],
        ["tag", "b"],
        ["tag", "a"],
    ]
    assert attrs["mqtt.content_type"] == "application/json"
