"""Interop with the official danube-client through the embedded broker, both ways.

The official client always runs in a subprocess (its generated stubs and ours cannot share protobuf's
default pool, docs/wire-contract.md §1).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from danube_connect_core.client import DanubeClient, fnv1a_64

SCRIPTS = Path(__file__).parent / "interop_scripts"
pytestmark = pytest.mark.interop


async def start_script(name: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPTS / name),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_our_producer_to_official_consumer(broker: Any) -> None:
    topic = f"/default/interop-{uuid.uuid4().hex[:8]}"
    count = 20
    async with DanubeClient(broker.url) as client:
        producer = await client.create_producer(topic, "ours", partitions=2, reliable=True)
        proc = await start_script("official_consume.py", broker.url, topic, "interop-sub", str(count))
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line.strip() == b"subscribed", line
            for i in range(count):
                await producer.send(f"ours-{i}".encode(), attributes={"i": str(i)}, key=f"k{i}")
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()
    records = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert sorted(r["payload"] for r in records) == sorted(f"ours-{i}" for i in range(count))
    for r in records:
        i = int(r["attributes"]["i"])
        assert r["routing_key"] == f"k{i}"
        assert r["topic"] == f"{topic}-part-{fnv1a_64(f'k{i}') % 2}"


async def test_official_producer_to_our_consumer(broker: Any) -> None:
    topic = f"/default/interop-{uuid.uuid4().hex[:8]}"
    count = 20
    async with DanubeClient(broker.url) as client:
        # the topic must exist before subscribing: create its partitions with our producer first
        await client.create_producer(topic, "setup", partitions=2, reliable=True)
        consumer = await client.subscribe(topic, "ours-sub", consumer_name="ours")
        proc = await start_script("official_produce.py", broker.url, topic, str(count), "2")
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert out.decode().splitlines()[-1] == "done"
        got = []
        for _ in range(count):
            msg = await asyncio.wait_for(consumer.receive(), 30)
            assert await consumer.ack(msg)
            got.append(msg)
    assert sorted(m.payload for m in got) == sorted(f"official-{i}".encode() for i in range(count))
    for m in got:
        i = int(m.attributes["i"])
        assert m.routing_key == f"k{i}"
        assert m.partition == fnv1a_64(f"k{i}") % 2  # the official router and ours agree on the wire too
        assert m.producer_name.startswith("official-producer")
