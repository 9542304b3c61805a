"""Idempotent deliveries, routing keys and attributes, read back from the topic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from .webhook_testsupport import API_KEY, OpenReader, StartWebhook, payment


async def test_duplicate_deliveries_answer_the_same_2xx_and_publish_once(
    broker: Any, start_webhook: StartWebhook, open_reader: OpenReader
) -> None:
    topic = "/default/idempotent"
    hook = await start_webhook(
        broker.url,
        {
            "endpoints": [
                {
                    "path": "/hooks",
                    "danube_topic": topic,
                    "reliable_dispatch": True,
                    "idempotency": {"header": "webhook-id", "window_s": 3600},
                }
            ]
        },
    )
    reader = await open_reader(broker.url, topic)

    # sequential repeats replay the first answer
    answers = [
        await hook.post("/hooks", payment(1, seq=1), headers={"webhook-id": "evt_1"}) for _ in range(3)
    ]
    assert [a[0] for a in answers] == [200, 200, 200]
    assert answers[0][1] == answers[1][1] == answers[2][1]
    assert "Idempotent-Replayed" not in answers[0][2]
    assert answers[1][2]["Idempotent-Replayed"] == "true"

    # concurrent repeats: one publishes, the others wait for it and replay its answer
    concurrent = await asyncio.gather(
        *(hook.post("/hooks", payment(2, seq=2), headers={"webhook-id": "evt_2"}) for _ in range(8))
    )
    assert {a[0] for a in concurrent} == {200}
    assert len({a[1]["offset"] for a in concurrent}) == 1

    # a failed attempt is not remembered: the corrected retry with the same id publishes
    status, _, _ = await hook.post("/hooks", b'{"broken', headers={"webhook-id": "evt_3"})
    assert status == 400
    status, _, _ = await hook.post("/hooks", payment(3, seq=3), headers={"webhook-id": "evt_3"})
    assert status == 200

    # no id header: no de-duplication
    for _ in range(2):
        status, _, _ = await hook.post("/hooks", payment(4, seq=4))
        assert status == 200

    status, _, _ = await hook.post("/hooks", payment(0, seq="end"), headers={"webhook-id": "evt_end"})
    assert status == 200
    await reader.until(lambda msgs: any(b'"end"' in m.payload for m in msgs))
    assert [p["seq"] for p in reader.payloads()] == [1, 2, 3, 4, 4, "end"]
    ids = [m.attributes.get("webhook.idempotency_key") for m in reader.messages]
    assert ids == ["evt_1", "evt_2", "evt_3", None, None, "evt_end"]


async def test_routing_key_from_a_json_pointer_and_attributes(
    broker: Any, start_webhook: StartWebhook, open_reader: OpenReader
) -> None:
    topic = "/default/keyed"
    hook = await start_webhook(
        broker.url,
        {
            "endpoints": [
                {
                    "path": "/keyed",
                    "danube_topic": topic,
                    "partitions": 3,
                    "reliable_dispatch": True,
                    "key": "/data/customer",
                    "success_status": 202,
                }
            ]
        },
    )
    reader = await open_reader(broker.url, topic)
    partition_of: dict[str, set[int]] = {}
    for i in range(30):
        customer = f"cus_{i % 5}"
        status, body, headers = await hook.post(
            "/keyed", {"seq": i, "data": {"customer": customer}}, headers={"X-Request-Id": f"req-{i}"}
        )
        assert status == 202, body
        assert body["request_id"] == f"req-{i}" == headers["X-Request-Id"]
        partition_of.setdefault(customer, set()).add(body["partition"])
    assert all(len(p) == 1 for p in partition_of.values())  # one customer, one partition
    await reader.take(30)
    for msg in reader.messages:
        doc = reader.payloads()[reader.messages.index(msg)]
        assert msg.routing_key == doc["data"]["customer"]
        assert msg.partition in partition_of[doc["data"]["customer"]]
        assert msg.attributes["webhook.endpoint"] == "/keyed"
        assert msg.attributes["webhook.request_id"] == f"req-{doc['seq']}"
    assert sorted(p["seq"] for p in reader.payloads()) == list(range(30))


async def test_a_body_that_does_not_arrive_in_time_gets_408(broker: Any, start_webhook: StartWebhook) -> None:
    hook = await start_webhook(
        broker.url,
        {"request_timeout_ms": 300, "endpoints": [{"path": "/slow", "danube_topic": "/default/slow"}]},
    )

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"seq": '
        await asyncio.sleep(1.5)
        yield b"1}"

    status, body, _ = await hook.request(
        "POST", "/slow", data=trickle(), headers={"Content-Type": "application/json", "x-api-key": API_KEY}
    )
    assert status == 408 and body["error"] == "request_timeout"
    status, _, _ = await hook.post("/slow", {"seq": 2})
    assert status == 200
