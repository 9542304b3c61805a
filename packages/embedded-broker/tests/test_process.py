"""The console script as a real process: ready line, SIGTERM, SIGKILL and restarts on one data dir."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from danube_embedded_broker.testing import BrokerProcess, StubClient, next_message

pytestmark = pytest.mark.integration  # broker processes

T = "/default/durable"


async def test_sigterm_restart_delivers_exactly_the_unacked(broker_process: BrokerProcess) -> None:
    url = broker_process.start()
    async with StubClient(url) as client:
        pid = await client.create_producer(T)
        call = await client.stream(await client.subscribe(T, "sink", "c1"))
        sends = [client.send(pid, T, str(i).encode()) for i in range(1000)]
        for start in range(0, 1000, 100):  # bounded concurrency, order not needed here
            await asyncio.gather(*sends[start : start + 100])
        acked: set[bytes] = set()
        while len(acked) < 400:
            message = await next_message(call)
            await client.ack(message)
            acked.add(message.payload)
        call.cancel()
    assert broker_process.stop() == 0
    port = broker_process.port
    assert broker_process.start() == url and broker_process.port == port

    async with StubClient(url) as client:
        call = await client.stream(await client.subscribe(T, "sink", "c1"))
        rest: set[bytes] = set()
        while len(rest) < 600:
            message = await next_message(call)
            assert message.payload not in acked
            rest.add(message.payload)
            await client.ack(message)
        call.cancel()
    assert acked | rest == {str(i).encode() for i in range(1000)}
    assert broker_process.stop() == 0


async def test_sigkill_keeps_acknowledged_writes_and_acks(tmp_path: Path) -> None:
    process = BrokerProcess(tmp_path / "data", args=["--fsync", "never", "--namespace", "iot"])
    url = process.start()
    try:
        async with StubClient(url) as client:
            pid = await client.create_producer("/iot/t")
            call = await client.stream(await client.subscribe("/iot/t", "s"))
            for i in range(50):
                await client.send(pid, "/iot/t", str(i).encode())
            for _ in range(20):
                await client.ack(await next_message(call))
            call.cancel()
        process.kill()
        process.start()
        async with StubClient(url) as client:
            call = await client.stream(await client.subscribe("/iot/t", "s"))
            offsets = []
            for _ in range(30):  # the in-flight window is 10: ack as we go
                message = await next_message(call)
                offsets.append(message.msg_id.topic_offset)
                await client.ack(message)
            assert sorted(offsets) == list(range(20, 50))
            call.cancel()
    finally:
        if process.running:
            process.stop()


def test_cli_rejects_missing_auth_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "danube_embedded_broker",
            "--port",
            "0",
            "--auth-secret-env",
            "NOPE_NOT_SET_X",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "NOPE_NOT_SET_X" in result.stderr and result.stdout == ""
