"""Broker outage: a real broker process stopped for 10 s while the SDK's exporters keep exporting.

The connector answers retry-later (HTTP 503 + Retry-After, gRPC UNAVAILABLE + RetryInfo) while Danube
cannot take the data; the exporters retry by themselves; once the broker is back everything flows again,
and every span of every batch an exporter was told was exported is on the topic (counted by span id)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from danube_connect_core.testing import http_get
from danube_connect_core.testing.topic_reader import open_topic_reader

from .otel_testsupport import TOPICS, StartOtel, batches, exporters, make_spans, span_ids_on

pytestmark = pytest.mark.slow

SPANS, BATCH, OUTAGE_S = 2_000, 50, 10.0


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_exporters_retry_through_a_broker_outage_and_nothing_accepted_is_lost(
    broker_process: Any, start_otel: StartOtel, transport: str
) -> None:
    url = await asyncio.to_thread(broker_process.start)
    otel = await start_otel(url, encoding="protobuf", retry_after_s=2, partitions=2)
    topic = TOPICS["traces"]
    reader = await open_topic_reader(url, topic, "outage")
    spans = make_spans(SPANS)
    exporter = exporters(transport, otel, timeout=120)["traces"]
    accepted: list[int] = []  # span ids of batches answered SUCCESS
    failed_batches = 0
    exported = threading.Semaphore(0)

    def export_all() -> None:
        nonlocal failed_batches
        for batch in batches(spans, BATCH):
            if exporter.export(batch).name == "SUCCESS":
                accepted.extend(s.context.span_id for s in batch)
            else:
                failed_batches += 1
            exported.release()
            time.sleep(0.05)  # a steady stream, not one burst
        exporter.shutdown()

    try:
        sending = asyncio.create_task(asyncio.to_thread(export_all))
        for _ in range(5):  # some batches go through before the outage
            await asyncio.to_thread(exported.acquire)
        await asyncio.to_thread(broker_process.stop)
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(broker_process.start)
        assert broker_process.url == url
        async with asyncio.timeout(300):
            await sending

        wanted = {i.to_bytes(8, "big") for i in accepted}
        await reader.until(lambda ms: wanted <= set(span_ids_on(ms, "protobuf")), within=120)
        on_topic = span_ids_on(reader.messages, "protobuf")
        # the exporters were told to retry, and their retries got the data in
        status, text = await asyncio.to_thread(http_get, otel.running.port, "/metrics")
        refused = "503" if transport == "http" else "UNAVAILABLE"
        told_to_retry = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("danube_otel_requests_total{") and f'code="{refused}"' in line
        )
        print(
            f"{transport}: {len(accepted)} spans accepted, {failed_batches} batches given up by the exporter "
            "(its retry budget), "
            f"{told_to_retry:.0f} answers {refused}, {len(on_topic)} spans on the topic "
            f"({len(on_topic) - len(set(on_topic))} duplicates)"
        )
        assert status == 200 and told_to_retry >= 1
        assert wanted <= set(on_topic)
        assert len(accepted) >= SPANS - BATCH * failed_batches
    finally:
        await reader.close()
