"""Sink failure semantics with real connector processes against an embedded broker.

The connector runs as ``danube-connect run danube_connect_core.testing.faulty_sink:FaultySink``; the broker
runs in the test's event loop (conftest ``broker_factory``).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from danube_connect_core.testing import ConnectorProcess, consume, http_get, produce
from danube_connect_core.testing.waits import metric_settled, metric_sum, start_ready

FAULTY = "danube_connect_core.testing.faulty_sink:FaultySink"
TOPIC = "/default/orders"


def sink_config(
    tmp_path: Path,
    url: str,
    name: str,
    out: Path,
    extra: str = "",
    processing: str = "",
    errors: str = "",
    shutdown_timeout_ms: int = 20000,
) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""
danube_service_url = "{url}"
connector_name = "{name}"
[errors]
{errors}
[retry]
max_retries = 3
retry_backoff_ms = 20
max_backoff_ms = 100
[processing]
metrics_port = 0
shutdown_timeout_ms = {shutdown_timeout_ms}
{processing}
[faulty_sink]
path = "{out}"
{extra}
[[faulty_sink.topic_mappings]]
topic = "{TOPIC}"
subscription = "orders-sink"
"""
    )
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


async def wait_lines(path: Path, n: int, proc: ConnectorProcess, within: float = 60) -> list[dict[str, Any]]:
    try:
        async with asyncio.timeout(within):
            while len(lines(path)) < n:
                assert proc.proc is not None
                if proc.proc.poll() is not None:
                    raise AssertionError(f"connector exited {proc.proc.returncode}:\n{proc.log_tail()}")
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{len(lines(path))} of {n} lines written:\n{proc.log_tail()}") from None
    return lines(path)


async def get(port: int, path: str) -> tuple[int, str]:
    return await asyncio.to_thread(http_get, port, path)


async def started(proc: ConnectorProcess) -> int:
    """Start the process and wait until it is subscribed (/ready 200: a new subscription starts at the
    end of the topic, as on Danube, so records are produced after this)."""
    return await start_ready(proc)


async def test_retryable_twice_then_success(broker_factory: Any, tmp_path: Path) -> None:
    broker = await broker_factory()
    await produce(broker.url, TOPIC, [])  # creates the topic
    out = tmp_path / "out.jsonl"
    proc = ConnectorProcess(
        FAULTY, sink_config(tmp_path, broker.url, "retry-sink", out, "retryable_failures = 2")
    )
    try:
        port = await started(proc)
        await produce(broker.url, TOPIC, [{"id": i} for i in range(20)])
        written = await wait_lines(out, 20, proc)
        assert sorted(r["payload"]["id"] for r in written) == list(range(20))
        # the last line is in the file before write() returns and the runtime counts it sent
        await metric_settled(port, "danube_connector_messages_sent_total", 20, topic=TOPIC)
        _, text = await get(port, "/metrics")
        assert metric_sum(text, "danube_connector_retries_total") == 2
        assert metric_sum(text, "danube_connector_errors_total", kind="retryable") == 2
        assert metric_sum(text, "danube_connector_dead_lettered_total") == 0
        assert metric_sum(text, "danube_connector_messages_received_total", topic=TOPIC) == 20
        assert metric_sum(text, "danube_connector_messages_sent_total", topic=TOPIC) == 20
        # the acks of the last batch may still be on their way (written, then acked)
        assert await metric_settled(port, "danube_connector_inflight_messages", 0, within=30) == 0
        status, body = await get(port, "/ready")
        assert status == 200, body
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()
    assert len(lines(out)) == 20  # every record written once


async def test_invalid_record_in_batch_of_50_is_dead_lettered(broker_factory: Any, tmp_path: Path) -> None:
    broker = await broker_factory(max_unacked_messages=100)
    await produce(broker.url, TOPIC, [])  # creates the topic
    payloads = [{"id": i, "bad": i == 17} for i in range(50)]
    out = tmp_path / "out.jsonl"
    config = sink_config(
        tmp_path,
        broker.url,
        "dlq-sink",
        out,
        'invalid_field = "bad"\ninvalid_value = true',
        "batch_size = 50\nbatch_timeout_ms = 20000\nbatch_idle_ms = 5000\nmax_unacked_messages = 100",
    )
    proc = ConnectorProcess(FAULTY, config)
    try:
        port = await started(proc)
        await consume(broker.url, "/default/dlq-sink-dlq", "inspect", 0)  # subscribe before anything arrives
        # one at a time: record k lands at offset k, which the dead letter's error.offset is checked against
        await produce(broker.url, TOPIC, payloads, attributes={"origin": "test"}, in_order=True)
        written = await wait_lines(out, 49, proc)
        (dead,) = await consume(broker.url, "/default/dlq-sink-dlq", "inspect", 1)
        # counted when the answer to the dead letter's publish comes back: after a reader can have it
        await metric_settled(port, "danube_connector_dead_lettered_total", 1)
        _, text = await get(port, "/metrics")
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()
    assert sorted(r["payload"]["id"] for r in written) == [i for i in range(50) if i != 17]
    assert json.loads(dead.payload) == {"id": 17, "bad": True}
    attrs = dead.attributes
    assert attrs["error.reason"] == "bad is True"
    assert attrs["error.connector"] == "dlq-sink"
    assert attrs["error.topic"] == TOPIC
    assert attrs["error.partition"] == "None"
    assert int(attrs["error.offset"]) == 17
    assert int(attrs["error.publish_time"]) > 0
    assert attrs["origin"] == "test"
    assert metric_sum(text, "danube_connector_batch_size_count") == 1  # one batch of 50
    assert metric_sum(text, "danube_connector_batch_size_sum") == 50
    assert metric_sum(text, "danube_connector_dead_lettered_total") == 1
    assert metric_sum(text, "danube_connector_errors_total", kind="invalid_data") == 1
    assert metric_sum(text, "danube_connector_messages_sent_total") == 49


async def test_target_always_failing_exits_1_without_ack(broker_factory: Any, tmp_path: Path) -> None:
    broker = await broker_factory()
    await produce(broker.url, TOPIC, [])  # creates the topic
    out = tmp_path / "out.jsonl"
    # subscribe first (a healthy instance that stops cleanly), so the records wait on the subscription
    first = ConnectorProcess(FAULTY, sink_config(tmp_path, broker.url, "down-sink-0", out))
    await started(first)
    first.signal(signal.SIGTERM)
    assert await asyncio.to_thread(first.wait) == 0
    await produce(broker.url, TOPIC, [{"id": i} for i in range(8)])
    config = sink_config(tmp_path, broker.url, "down-sink", out, "always_fail = true")
    # a budget of several seconds (8 retries, 0.2-1 s apart): /health is still read while it lasts, even
    # when a loaded machine answers the reads slowly
    text = config.read_text().replace("retry_backoff_ms = 20", "retry_backoff_ms = 400")
    text = text.replace("max_backoff_ms = 100", "max_backoff_ms = 1000").replace(
        "max_retries = 3", "max_retries = 8"
    )
    config.write_text(text)
    proc = ConnectorProcess(FAULTY, config).start()
    try:
        port = await asyncio.to_thread(proc.metrics_port)
        async with asyncio.timeout(30):
            while True:  # wait until the runtime is retrying the target
                status, body = await get(port, "/ready")
                if "retry" in json.loads(body)["checks"]["target"]["detail"]:
                    break
                await asyncio.sleep(0.05)
        assert status == 503
        _, health = await get(port, "/health")
        assert json.loads(health)["status"] == "degraded"
        assert await asyncio.to_thread(proc.wait) == 1
    finally:
        proc.kill()
    assert lines(out) == []
    assert any('"fatal' in line or "retries" in line for line in proc.lines)

    # a new, healthy instance receives every record again: nothing was acked
    out2 = tmp_path / "out2.jsonl"
    proc2 = ConnectorProcess(FAULTY, sink_config(tmp_path, broker.url, "down-sink-2", out2)).start()
    try:
        written = await wait_lines(out2, 8, proc2)
        proc2.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc2.wait) == 0
    finally:
        proc2.kill()
    assert sorted(r["payload"]["id"] for r in written) == list(range(8))


async def test_sigterm_during_batch_write_completes_and_acks(broker_factory: Any, tmp_path: Path) -> None:
    broker = await broker_factory()
    await produce(broker.url, TOPIC, [])  # creates the topic
    out = tmp_path / "out.jsonl"
    write_started = tmp_path / "write-started"
    config = sink_config(
        tmp_path,
        broker.url,
        "term-sink",
        out,
        f'write_delay_ms = 1500\nwrite_started_file = "{write_started}"',
        "batch_size = 10\nbatch_timeout_ms = 20000\nbatch_idle_ms = 5000",
    )
    proc = ConnectorProcess(FAULTY, config)
    try:
        await started(proc)
        await produce(broker.url, TOPIC, [{"id": i} for i in range(10)])
        async with asyncio.timeout(30):
            while not write_started.exists():  # noqa: ASYNC110 - a file another process writes
                await asyncio.sleep(0.01)
        proc.signal(signal.SIGTERM)  # the batch of 10 is being written now
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()
    assert sorted(r["payload"]["id"] for r in lines(out)) == list(range(10))
    assert any("stopping intake" in line for line in proc.lines)

    # nothing is redelivered: a new instance sees only a marker produced after it started
    out2 = tmp_path / "out2.jsonl"
    proc2 = ConnectorProcess(FAULTY, sink_config(tmp_path, broker.url, "term-sink-2", out2))
    try:
        await started(proc2)
        await produce(broker.url, TOPIC, [{"id": "marker"}])
        written = await wait_lines(out2, 1, proc2)
        proc2.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc2.wait) == 0
    finally:
        proc2.kill()
    assert [r["payload"]["id"] for r in written] == ["marker"]


@pytest.mark.parametrize("unused", [None])
async def test_metrics_names_health_and_ready(broker_factory: Any, tmp_path: Path, unused: None) -> None:
    from danube_connect_core.metrics import METRIC_NAMES

    broker = await broker_factory()
    await produce(broker.url, TOPIC, [])  # creates the topic
    out = tmp_path / "out.jsonl"
    proc = ConnectorProcess(FAULTY, sink_config(tmp_path, broker.url, "obs-sink", out))
    try:
        port = await started(proc)
        await produce(broker.url, TOPIC, [{"id": i} for i in range(5)])
        await wait_lines(out, 5, proc)
        _, text = await get(port, "/metrics")
        for name in METRIC_NAMES:
            assert re.search(rf"^{name}(_bucket|_count|_sum)?[{{ ]", text, re.M), name
        assert metric_sum(text, "danube_connector_health", connector="obs-sink") == 1
        assert (
            metric_sum(text, "danube_connector_messages_received_total", connector="obs-sink", topic=TOPIC)
            == 5
        )
        status, body = await get(port, "/health")
        assert status == 200 and json.loads(body)["status"] == "healthy"
        status, body = await get(port, "/ready")
        assert status == 200 and json.loads(body)["checks"]["danube"]["ok"] is True
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()


async def test_tolerance_none_makes_the_first_invalid_record_fatal(
    broker_factory: Any, tmp_path: Path
) -> None:
    broker = await broker_factory()
    await produce(broker.url, TOPIC, [])  # creates the topic
    out = tmp_path / "out.jsonl"
    invalid = 'invalid_field = "bad"\ninvalid_value = true'
    strict = sink_config(tmp_path, broker.url, "strict-sink", out, invalid, errors='tolerance = "none"')
    proc = ConnectorProcess(FAULTY, strict)
    try:
        await started(proc)
        await produce(broker.url, TOPIC, [{"id": i, "bad": i == 3} for i in range(10)])
        assert await asyncio.to_thread(proc.wait) == 1  # Fatal: drained, exit 1
    finally:
        proc.kill()
    # Nothing was dead-lettered and the invalid record was not acked: a tolerant instance on the same
    # subscription gets it again and dead-letters it, and every valid record ends up written.
    tolerant = sink_config(tmp_path, broker.url, "strict-sink", out, invalid)
    proc = ConnectorProcess(FAULTY, tolerant)
    try:
        port = await started(proc)
        async with asyncio.timeout(60):
            while {r["payload"]["id"] for r in lines(out)} != set(range(10)) - {3}:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert await metric_settled(port, "danube_connector_dead_lettered_total", 1, within=60) == 1
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()


async def test_second_signal_exits_at_once_while_draining(broker_factory: Any, tmp_path: Path) -> None:
    broker = await broker_factory()
    await produce(broker.url, TOPIC, [])
    out = tmp_path / "out.jsonl"
    marker = tmp_path / "write-started"
    # The target takes 10 minutes per batch and the drain may take as long: only a second signal ends
    # the process within the test's hang guard.
    config = sink_config(
        tmp_path,
        broker.url,
        "stuck-sink",
        out,
        f'write_delay_ms = 600000\nwrite_started_file = "{marker}"',
        shutdown_timeout_ms=600000,
    )
    proc = ConnectorProcess(FAULTY, config)
    try:
        await started(proc)
        await produce(broker.url, TOPIC, [{"id": 1}])
        async with asyncio.timeout(30):
            while not marker.exists():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        proc.signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert proc.proc is not None and proc.proc.poll() is None  # still draining the stuck batch
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 1
    finally:
        proc.kill()
    assert lines(out) == []  # the batch never completed, so it was never acked either


async def test_validate_connect_reports_broker_and_target(broker_factory: Any, tmp_path: Path) -> None:
    broker = await broker_factory()
    out = tmp_path / "out.jsonl"
    good = sink_config(tmp_path, broker.url, "check-sink", out)
    done = await asyncio.to_thread(
        subprocess.run,
        ["danube-connect", "validate", str(good), "--connector", FAULTY, "--connect"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "broker: reachable" in done.stdout and "target: reachable" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("OK: ")  # OK only after every check
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    bad = sink_config(tmp_path, dead_url, "check-sink-down", out)
    done = await asyncio.to_thread(
        subprocess.run,
        ["danube-connect", "validate", str(bad), "--connector", FAULTY, "--connect"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "broker: NOT reachable" in done.stdout
    assert "OK" not in done.stdout  # never "OK" and then the failure
    assert "the broker or the target is not usable" in done.stderr
    assert "Traceback" not in done.stderr


async def test_two_instances_of_one_sink_share_the_subscription_without_duplicates(
    broker_factory: Any, tmp_path: Path
) -> None:
    """Scaling out: the same configuration started twice (only the output differs). Each instance
    subscribes under its own default consumer name, so the broker spreads the messages over both; with one
    shared name it took the second for the first reconnecting and delivered messages to both."""
    broker = await broker_factory()
    await produce(broker.url, TOPIC, [])  # creates the topic
    outs, procs = [], []
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        out = tmp_path / side / "out.jsonl"
        outs.append(out)
        procs.append(ConnectorProcess(FAULTY, sink_config(tmp_path / side, broker.url, "scaled-sink", out)))
    try:
        for proc in procs:
            await started(proc)
        await produce(broker.url, TOPIC, [{"id": i} for i in range(200)])
        async with asyncio.timeout(60):
            while sum(len(lines(out)) for out in outs) < 200:
                for proc in procs:
                    assert proc.proc is not None and proc.proc.poll() is None, proc.log_tail()
                await asyncio.sleep(0.05)
        for proc in procs:
            proc.signal(signal.SIGTERM)
        for proc in procs:
            assert await asyncio.to_thread(proc.wait) == 0
    finally:
        for proc in procs:
            proc.kill()
    per_instance = [[r["payload"]["id"] for r in lines(out)] for out in outs]
    assert all(per_instance), "both instances received messages"
    assert sorted(per_instance[0] + per_instance[1]) == list(range(200))  # each once, none twice
