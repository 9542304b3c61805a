"""Faults of the OTLP source (``danube-connect run otel`` as a process) with the embedded broker.

SIGKILL mid-stream, then a restart on the same port: an OTLP/HTTP exporter (the conformance case's
upstream, one span per request) keeps exporting throughout. Every span answered 200 is on the topic (the
answer came only after Danube's ack, so a kill can lose only unanswered requests); requests that got no
answer are the exporter's to retry. Nothing is on the topic that was never sent; the counts are printed.
(SIGTERM mid-stream and restart: the kit's source check; a broker outage under the SDK's exporters:
connectors/otel/tests/test_outage.py.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import orjson
from danube_connect_core.testing import ConnectorProcess
from danube_connect_core.testing.conformance.probes import conformance_broker, topic_messages, wait_until
from danube_connect_core.testing.waits import start_ready
from danube_source_otel.testing import OtelUpstream

TOPIC = "/default/otel-faults"


async def test_sigkill_mid_stream_then_restart_loses_no_answered_span(tmp_path: Path) -> None:
    async with conformance_broker(tmp_path / "broker") as broker:
        upstream = OtelUpstream(tmp_path / "upstream")
        await upstream.start()
        config = upstream.write_config(broker.url, TOPIC)
        first = ConnectorProcess("otel", config, env=upstream.env)
        second = ConnectorProcess("otel", config, env=upstream.env)
        accepted: set[int] = set()
        sent = 0
        stop = asyncio.Event()

        async def feed() -> None:
            nonlocal sent
            while not stop.is_set():
                i, sent = sent, sent + 1
                if await upstream.send(i):
                    accepted.add(i)
                await asyncio.sleep(0.002)

        def arrived() -> list[int]:
            return [
                upstream.received_id(orjson.loads(m.payload)) for m in topic_messages(broker, TOPIC) or []
            ]

        feeding = asyncio.create_task(feed())
        try:
            await start_ready(first, within=90)

            async def flowing(n: int) -> bool:
                return len(accepted) >= n

            await wait_until(lambda: flowing(300), "300 spans accepted", within=120, proc=first)
            first.kill()  # SIGKILL: no drain
            at_kill = len(accepted)
            await start_ready(second, within=90)
            await wait_until(
                lambda: flowing(at_kill + 300), "300 more after the restart", within=120, proc=second
            )
            stop.set()
            await feeding

            async def all_arrived() -> bool:
                return accepted <= set(arrived())

            await wait_until(all_arrived, "every answered span on the topic", within=120, proc=second)
        finally:
            stop.set()
            await asyncio.gather(feeding, return_exceptions=True)
            first.kill()
            second.kill()
            await upstream.stop()
        counts = Counter(arrived())
        assert accepted <= counts.keys()
        assert counts.keys() <= set(range(sent)), "spans on the topic that were never sent"
        unanswered_published = counts.keys() - accepted
        print(
            f"otel SIGKILL: {sent} sent, {len(accepted)} answered 200 (all on the topic), "
            f"{len(unanswered_published)} published without an answer, "
            f"{sum(c - 1 for c in counts.values())} duplicates"
        )
