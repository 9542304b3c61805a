"""The manual-ack contract against real mosquitto, at the connection level (no Danube involved).

- a QoS 1/2 message that was not acknowledged is redelivered after a reconnect with a persistent session;
- an acknowledged one is not;
- QoS 2: PUBREC is sent only by ``ack`` (a message received but not acked comes back as a new PUBLISH).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from danube_source_mqtt.connection import MqttConnection, Subscription
from danube_source_mqtt.settings import MqttSettings
from danube_source_mqtt.testing import Mosquitto, Publisher
from paho.mqtt.client import MQTTMessage


def settings(mosq: Mosquitto, protocol: str = "3.1.1") -> MqttSettings:
    return MqttSettings.model_validate(
        {
            "broker_host": "127.0.0.1",
            "broker_port": mosq.port,
            "protocol": protocol,
            "clean_session": False,
            "topic_mappings": [{"mqtt_topic": "t/#", "danube_topic": "/default/t"}],
        }
    )


class Receiver:
    def __init__(self) -> None:
        self.messages: list[MQTTMessage] = []
        self.changed = asyncio.Event()

    def __call__(self, conn: MqttConnection, message: MQTTMessage) -> None:
        self.messages.append(message)
        self.changed.set()

    async def wait_for(self, n: int) -> None:
        async with asyncio.timeout(20):
            while len(self.messages) < n:
                self.changed.clear()
                await self.changed.wait()


async def connect(s: MqttSettings, receiver: Any, qos: int) -> MqttConnection:
    conn = MqttConnection(s, "manual-ack-test", receiver)
    await conn.connect()
    await conn.subscribe([Subscription("t/#", qos)])
    return conn


@pytest.mark.parametrize(("qos", "protocol"), [(1, "3.1.1"), (2, "3.1.1"), (1, "5"), (2, "5")])
async def test_unacked_messages_are_redelivered_acked_ones_are_not(
    mosquitto: Mosquitto, qos: int, protocol: str
) -> None:
    s = settings(mosquitto, protocol)
    first = Receiver()
    conn = await connect(s, first, qos)
    pub = await asyncio.to_thread(Publisher, mosquitto.port)
    await asyncio.to_thread(pub.publish_all, [(f"t/{i}", f"m{i}".encode()) for i in range(10)], qos)
    await first.wait_for(10)
    for m in first.messages[:6]:  # ack the first six only
        conn.ack(m.mid, m.qos)
    # A round trip after the acks, before the connection drops: mosquitto handles one connection's
    # packets in order, so its SUBACK comes after it processed the PUBACKs/PUBRECs sent before.
    await conn.subscribe([Subscription("sync/acks-read", qos)])
    conn.abort()  # like a crash: no DISCONNECT

    second = Receiver()
    conn = await connect(s, second, qos)
    assert conn.session_present
    await second.wait_for(4)
    await asyncio.sleep(0.3)  # nothing else may come
    assert sorted(m.payload for m in second.messages) == [b"m6", b"m7", b"m8", b"m9"]
    assert all(m.qos == qos for m in second.messages)
    for m in second.messages:
        conn.ack(m.mid, m.qos)
    await conn.disconnect()

    third = Receiver()
    conn = await connect(s, third, qos)
    await asyncio.sleep(0.3)
    assert [(m.payload, m.dup) for m in third.messages] == []
    await conn.disconnect()
    await asyncio.to_thread(pub.close)
