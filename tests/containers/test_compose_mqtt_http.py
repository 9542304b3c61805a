"""A second pipeline through containers (compose/mqtt-http.yml): MQTT messages published to a mosquitto
container -> MQTT source -> embedded broker -> HTTP sink at --scale 2 on one Shared subscription -> an
HTTP receiver container. Every message arrives exactly once, and both sink replicas delivered some
(their own /metrics say so). The test talks only to ports published on 127.0.0.1.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from danube_connect_core.testing.waits import metric_sum

from .compose_support import Project, free_port, free_range, get_json, http, wait_for

pytestmark = pytest.mark.timeout(900)
MESSAGES = 600


@pytest.fixture(scope="module")
def pipeline() -> Iterator[tuple[Project, int, int]]:
    mqtt_port, receiver_port = free_port(), free_port()
    project = Project.for_this_run(
        "dcmqtt",
        Path(__file__).resolve().parent / "compose",
        ["mqtt-http.yml"],
        {
            "MQTT_PORT": str(mqtt_port),
            "RECEIVER_PORT": str(receiver_port),
            "SOURCE_METRICS_PORTS": free_range(3, start=40000),
            "SINK_METRICS_PORTS": free_range(3, start=45000),
        },
    )
    with project.running("--scale", "http-sink=2"):
        yield project, mqtt_port, receiver_port


def _ready(project: Project, service: str) -> bool:
    ids = project.containers(service)
    return bool(ids) and all(
        http("GET", f"http://127.0.0.1:{project.host_port(cid, 9090)}/ready")[0] == 200 for cid in ids
    )


def test_every_message_once_and_both_sink_replicas_work(pipeline: tuple[Project, int, int]) -> None:
    project, mqtt_port, receiver_port = pipeline
    assert len(project.containers("http-sink")) == 2
    for service in ("mqtt-source", "http-sink"):
        wait_for(f"{service} /ready on every replica", lambda s=service: _ready(project, s), 240)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="container-test-publisher")
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    try:
        infos = [
            client.publish(f"sensors/s{n % 7}/temperature", json.dumps({"seq": n, "celsius": n % 40}), qos=1)
            for n in range(MESSAGES)
        ]
        for info in infos:
            info.wait_for_publish(timeout=60)
            assert info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()

    received_url = f"http://127.0.0.1:{receiver_port}/received"

    def all_arrived() -> list[object] | None:
        bodies: list[object] = get_json(received_url)["bodies"]
        seen = {b.get("seq") for b in bodies if isinstance(b, dict)}
        return bodies if seen >= set(range(MESSAGES)) else None

    bodies = wait_for(f"{MESSAGES} messages at the receiver", all_arrived, 300)
    seqs = Counter(b["seq"] for b in bodies if isinstance(b, dict))
    assert set(seqs) == set(range(MESSAGES)), f"missing: {sorted(set(range(MESSAGES)) - set(seqs))[:20]}"
    assert set(seqs.values()) == {1}, (
        f"delivered more than once: {[s for s, n in seqs.items() if n > 1][:20]}"
    )

    def sent_per_replica() -> dict[str, float]:
        sent = {}
        for cid in project.containers("http-sink"):
            _, text = http("GET", f"http://127.0.0.1:{project.host_port(cid, 9090)}/metrics")
            sent[cid] = metric_sum(text.decode(), "danube_connector_messages_sent_total")
        return sent

    # A replica counts a record sent when the receiver's answer comes back, after the receiver has it:
    # read the counters once they add up (or as they stand after the deadline, for the assertions).
    deadline = time.monotonic() + 60
    delivered = sent_per_replica()
    while sum(delivered.values()) < MESSAGES and time.monotonic() < deadline:
        time.sleep(0.5)
        delivered = sent_per_replica()
    print(f"records delivered per http-sink replica: {sorted(delivered.values())}")
    assert all(n > 0 for n in delivered.values()), f"a sink replica delivered nothing: {delivered}"
    assert sum(delivered.values()) == MESSAGES
