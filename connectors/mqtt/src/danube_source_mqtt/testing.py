"""Test and benchmark helpers: a real mosquitto process and a plain paho publisher.

:class:`Mosquitto` writes its own conf (``listener PORT 127.0.0.1``, ``allow_anonymous true``, no
pid_file, since tests may run as root). Queues are unlimited so a persistent session never drops what
the connector has not acknowledged yet; ``persistence true`` keeps sessions across a mosquitto restart.

:data:`CASE` registers the MQTT source for the conformance kit (:class:`MqttUpstream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from danube_connect_core.testing.conformance import SourceCase, SourceUpstream, payload
from danube_connect_core.testing.harness import free_port
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto")


def mosquitto_binary() -> str | None:
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


@dataclass
class Mosquitto:
    """A mosquitto process on 127.0.0.1:port; ``restart()`` keeps the port and the persistence file."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    extra_conf: str = ""
    #: Keep sessions and queued messages across a mosquitto restart (persistence file in ``workdir``).
    persistence: bool = True
    proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def start(self) -> Mosquitto:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            + (
                f"persistence true\npersistence_location {self.workdir}/\nautosave_interval 1\n"
                if self.persistence
                else "persistence false\n"
            )
            + "max_queued_messages 0\n"
            "max_queued_bytes 0\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n" + self.extra_conf
        )
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "mosquitto.log", "ab"),  # noqa: SIM115 - owned by the process
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "mosquitto did not start: " + (self.workdir / "mosquitto.log").read_text()
                    ) from None
                time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> Mosquitto:
        self.stop()
        return self.start()


class Publisher:
    """A plain paho client (own network thread): publishes and waits for the broker's acks."""

    def __init__(self, port: int, client_id: str = "test-publisher", protocol: int = 4) -> None:
        version = mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False, properties: object = None
    ) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)  # type: ignore[arg-type]

    def publish_all(self, items: list[tuple[str, bytes | str]], qos: int = 1) -> None:
        infos = [self.publish(t, p, qos) for t, p in items]
        for info in infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class DanubeCollector:
    """Subscribes to a Danube topic (before anything is published: a new subscription starts at the
    latest offset) and collects every stored message once, acking it (reliable topics only: offsets
    identify messages)."""

    def __init__(self, service_url: str, topic: str, subscription: str) -> None:
        self.service_url = service_url
        self.topic = topic
        self.subscription = subscription
        #: Each stored message once (by partition and offset): several entries with the same payload
        #: mean it was published more than once.
        self.messages: list[Any] = []
        self.redelivered = 0
        self._positions: set[tuple[str, int]] = set()
        self._client: Any = None
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> DanubeCollector:
        from danube_connect_core.client import DanubeClient

        self._client = DanubeClient(self.service_url)
        self._consumer = await self._client.subscribe(
            self.topic, self.subscription, consumer_name=f"collector-{self.subscription}"
        )
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            msg = await self._consumer.receive()
            position = (msg.partition_topic, msg.offset)
            if position in self._positions:
                # The same stored message again (Danube redelivered it): not a duplicate publish.
                self.redelivered += 1
            else:
                self._positions.add(position)
                self.messages.append(msg)
            await self._consumer.ack(msg)
            self._changed.set()

    async def wait_for(self, count: int, within: float = 60.0) -> list[Any]:
        """Wait until at least ``count`` messages arrived (TimeoutError after ``within`` seconds)."""
        async with asyncio.timeout(within):
            while len(self.messages) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.messages

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.close()
        if self._client is not None:
            await self._client.close()


async def wait_ready(port: int, within: float = 60.0, ready: bool = True) -> None:
    """Poll ``GET /ready`` on the metrics port until it answers 200 (or, with ``ready=False``, 503)."""
    from danube_connect_core.testing.waits import wait_for_status

    await wait_for_status(port, "/ready", 200 if ready else 503, within=within)


class MqttUpstream(SourceUpstream):
    """The MQTT source's conformance upstream (danube_connect_core.testing.conformance): its own
    mosquitto under ``root``; record ``i`` is published QoS 1 to ``conformance/t<i % 4>`` and counts as
    acknowledged once mosquitto sent its PUBACK. The connector keeps a persistent session
    (``clean_session = false``), so what is published while no connector runs is delivered after the
    restart: at least once, duplicates allowed."""

    section_name = "mqtt"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.mosquitto: Mosquitto | None = None
        self.publisher: Publisher | None = None

    async def start(self) -> None:
        binary = mosquitto_binary()
        if binary is None:
            if os.environ.get("CI") == "true":
                raise AssertionError("mosquitto is not installed (scripts/bootstrap.sh installs it)")
            import pytest

            pytest.skip("mosquitto is not installed")
        self.mosquitto = await asyncio.to_thread(Mosquitto(binary, self.root / "mosquitto").start)
        self.publisher = await asyncio.to_thread(Publisher, self.mosquitto.port, "conformance-upstream")

    async def stop(self) -> None:
        if self.publisher is not None:
            await asyncio.to_thread(self.publisher.close)
            self.publisher = None
        if self.mosquitto is not None:
            await asyncio.to_thread(self.mosquitto.stop)
            self.mosquitto = None

    def section(self, topic: str) -> dict[str, Any]:
        assert self.mosquitto is not None
        return {
            "broker_host": "127.0.0.1",
            "broker_port": self.mosquitto.port,
            "client_id": "conformance-mqtt",
            "clean_session": False,
            "reconnect_min_delay_ms": 100,
            "reconnect_max_delay_ms": 1000,
            "topic_mappings": [
                {
                    "mqtt_topic": "conformance/#",
                    "danube_topic": topic,
                    "partitions": 2,
                    "qos": 1,
                    "payload_format": "json",
                }
            ],
        }

    def bad_records(self) -> list[bytes]:
        # The mapping reads JSON (payload_format): these are not JSON documents.
        return [b"not json", b'{"i": 1', b"\xff\xfe"]

    async def send_bad(self, data: bytes) -> None:
        assert self.publisher is not None
        info = self.publisher.publish("conformance/bad", data, qos=1)
        await asyncio.to_thread(info.wait_for_publish, 30)

    async def send(self, i: int) -> bool:
        assert self.publisher is not None
        info = self.publisher.publish(f"conformance/t{i % 4}", orjson.dumps(payload(i)), qos=1)
        await asyncio.to_thread(info.wait_for_publish, 30)
        assert info.is_published(), f"mosquitto did not acknowledge record {i}"
        return True


CASE = SourceCase("mqtt", idempotent=False, upstream_type=MqttUpstream)
