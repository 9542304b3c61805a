"""Shared helpers for the SurrealDB sink tests."""

from __future__ import annotations

from typing import Any

from danube_connect_core.records import SinkRecord

TOPIC = "/stripe/payments"


def record(payload: Any, offset: int, partition: int = 0, topic: str = TOPIC, sub: str = "s") -> SinkRecord:
    return SinkRecord(
        payload=payload,
        topic=topic,
        partition=partition,
        offset=offset,
        publish_time=1_700_000_000_000_000 + offset,
        producer_name="p",
        attributes={},
        schema=None,
        key=None,
        raw=b"",
        subscription=sub,
    )


def payment(i: int, event: str = "payment.succeeded") -> dict[str, Any]:
    return {"event": event, "amount": i, "currency": "USD", "timestamp": 1705004567 + i}
