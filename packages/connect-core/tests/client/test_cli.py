"""`danube-connect produce` / `consume` as real processes against a broker process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.integration  # CLI processes against a broker process

CLI = [sys.executable, "-c", "from danube_connect_core.cli import main; main()"]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_produce_then_consume_count_exits_zero(broker_process: Any) -> None:
    url = broker_process.start()
    topic = "/default/cli"
    # the topic must exist (and be reliable) before the subscription: one message creates it
    first = cli("produce", "--service-url", url, "--topic", topic, "--message", '{"n": 0}', "--reliable")
    assert first.returncode == 0, first.stderr
    consumer = subprocess.Popen(
        [*CLI, "consume", "--service-url", url, "--topic", topic, "--subscription", "s", "--count", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # a new subscription starts at the latest offset: keep producing until the consumer has 3
        for _ in range(20):
            sent = cli(
                "produce", "--service-url", url, "--topic", topic, "--message", '{"n": 1}',
                "--reliable", "--count", "2", "--attribute", "source=test", "--key", "k",
            )  # fmt: skip
            assert sent.returncode == 0, sent.stderr
            try:
                out, err = consumer.communicate(timeout=3)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            pytest.fail("consume --count 3 did not exit")
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3
    assert lines[0]["payload"] == '{"n": 1}'
    assert lines[0]["attributes"] == {"source": "test"}
    assert lines[0]["topic"] == topic
    assert isinstance(lines[0]["offset"], int)


def test_produce_reports_errors_with_nonzero_exit() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    absent = cli(
        "produce", "--service-url", f"http://127.0.0.1:{port}", "--topic", "/default/x",
        "--message", "{}", "--max-retries", "1",
    )  # fmt: skip
    assert absent.returncode == 1
    assert "failed after 2 attempts" in absent.stderr and "UNAVAILABLE" in absent.stderr
    bad_topic = cli("produce", "--topic", "not-a-topic", "--message", "{}")
    assert bad_topic.returncode == 1 and "invalid topic name" in bad_topic.stderr
    usage = cli("produce", "--topic", "/default/x")
    assert usage.returncode == 2
