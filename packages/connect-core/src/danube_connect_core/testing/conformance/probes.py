"""Looking at a running connector process and the in-process broker from a test.

- :func:`conformance_broker` - the in-process embedded broker the checks run against;
- :func:`wait_until` - poll a condition (never a fixed sleep), failing with the process's log tail;
- :func:`start_ready` - start a ``danube-connect run`` process and wait for ``GET /ready`` = 200
  (danube_connect_core.testing.waits's, re-exported);
- :func:`metric`, :func:`sent_total`, :func:`ready_status` - its Prometheus metrics and readiness;
- :func:`backlog`, :func:`acked_ids`, :func:`topic_messages` - what the broker holds;
- :func:`stop_cleanly`, :func:`drain_and_stop`, :func:`exit_code` - a clean stop and its exit code.

The broker readers reach into :class:`~danube_embedded_broker.EmbeddedBroker` (its topics, logs and
cursors): they need an in-process broker, and they read a consistent view as long as they do not await.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from danube_connect_core.testing.conformance.target import WINDOW
from danube_connect_core.testing.harness import ConnectorProcess, http_get
from danube_connect_core.testing.waits import metric_sum, metric_value, start_ready

__all__ = [
    "BROKER_SETTINGS",
    "acked_ids",
    "backlog",
    "conformance_broker",
    "drain_and_stop",
    "exit_code",
    "exited_cleanly",
    "metric",
    "ready_status",
    "sent_total",
    "start_ready",
    "stop_cleanly",
    "topic_messages",
    "wait_until",
]

#: The checks' broker: fast redelivery after a nack, a window matching the sinks' ``max_unacked_messages``
#: and a long ack timeout, so redeliveries come only from the fault injected, never from a slow batch on
#: a loaded machine.
BROKER_SETTINGS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 0,
    "fsync": "never",
    "redelivery_base_ms": 20,
    "redelivery_max_ms": 200,
    "max_unacked_messages": WINDOW,
    "ack_timeout_ms": 120_000,
}

#: A sink answers /ready and /metrics at once; this only covers a machine busy with other work.
PROBE_TIMEOUT_S = 30.0


@contextlib.asynccontextmanager
async def conformance_broker(data_dir: Path, **overrides: Any) -> AsyncIterator[Any]:
    """A started in-process :class:`~danube_embedded_broker.EmbeddedBroker` with :data:`BROKER_SETTINGS`
    (``overrides`` on top) on ``data_dir``; stopped on exit. Yields the broker (``.url`` to connect)."""
    from danube_embedded_broker import BrokerConfig, EmbeddedBroker

    broker = EmbeddedBroker(BrokerConfig(**{**BROKER_SETTINGS, "data_dir": data_dir, **overrides}))
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    what: str,
    *,
    within: float,
    proc: ConnectorProcess | None = None,
    interval: float = 0.2,
) -> None:
    """Poll ``condition`` until it is true. Raises AssertionError naming ``what`` (with ``proc``'s log
    tail) after ``within`` seconds, or at once when ``proc`` exited meanwhile."""
    deadline = time.monotonic() + within
    while not await condition():
        if proc is not None and proc.proc is not None and proc.proc.poll() is not None:
            raise AssertionError(
                f"waiting for {what}: {proc.connector} exited {proc.proc.returncode}:\n{proc.log_tail()}"
            )
        if time.monotonic() > deadline:
            tail = f":\n{proc.log_tail()}" if proc is not None else ""
            raise AssertionError(f"not within {within} s: {what}{tail}")
        await asyncio.sleep(interval)


async def ready_status(port: int) -> tuple[int, str]:
    """(status, body) of ``GET /ready`` on a running connector's metrics port."""
    return await asyncio.to_thread(http_get, port, "/ready", PROBE_TIMEOUT_S)


#: Sum of a running connector's metric over its series (0 when absent); AssertionError when ``/metrics``
#: does not answer 200. The kit's name for :func:`~danube_connect_core.testing.waits.metric_value`.
metric = metric_value


async def sent_total(port: int) -> float:
    """``danube_connector_messages_sent_total`` of a running sink (records written to its target); 0
    while ``/metrics`` does not answer."""
    status, text = await asyncio.to_thread(http_get, port, "/metrics")
    if status != 200:
        return 0.0
    return metric_sum(text, "danube_connector_messages_sent_total")


def _partition_topics(broker: Any, topic: str) -> list[Any]:
    return [t for name, t in broker.core.topics.items() if name == topic or name.startswith(f"{topic}-part-")]


def backlog(broker: Any, topic: str, subscription: str) -> int:
    """Messages of ``topic`` (all partitions) not yet acked by ``subscription`` on an in-process broker."""
    names = {t.name for t in _partition_topics(broker, topic)}
    return sum(
        n for (t, sub), n in broker.core.snapshot().backlog.items() if sub == subscription and t in names
    )


def topic_messages(broker: Any, topic: str) -> list[Any] | None:
    """Every message stored on ``topic`` (all partitions; ``danube_embedded_broker.wire.pb.StreamMessage``
    with ``payload`` and ``attributes``) of an in-process broker; None when the topic does not exist."""
    from danube_embedded_broker.wire import pb

    logs = [t.log for t in _partition_topics(broker, topic) if t.log is not None]
    if not logs:
        return None
    return [
        pb.StreamMessage.FromString(log.read(offset)) for log in logs for offset in range(log.next_offset)
    ]


def acked_ids(broker: Any, topic: str, subscription: str) -> list[int]:
    """The ``i`` of every message of ``topic`` that ``subscription`` acknowledged, read from an in-process
    broker's logs and cursors. Call it from the broker's event loop (no await: a consistent view)."""
    from danube_embedded_broker.wire import pb

    out: list[int] = []
    for t in _partition_topics(broker, topic):
        sub = t.subscriptions.get(subscription)
        if sub is None or t.log is None:
            continue
        for offset in range(t.log.next_offset):
            if sub.state.is_acked(offset):
                message = pb.StreamMessage.FromString(t.log.read(offset))
                out.append(int(orjson.loads(message.payload)["i"]))
    return out


async def exit_code(proc: ConnectorProcess, *, within: float) -> int:
    """``proc``'s exit code; AssertionError with its log tail when it is still running after ``within`` s."""
    try:
        return await asyncio.to_thread(proc.wait, within)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{proc.connector} still running after {within} s:\n{proc.log_tail()}") from None


async def stop_cleanly(proc: ConnectorProcess, *, within: float = 60.0) -> None:
    """SIGTERM ``proc``, then :func:`exited_cleanly`."""
    proc.signal(signal.SIGTERM)
    await exited_cleanly(proc, within=within)


async def exited_cleanly(proc: ConnectorProcess, *, within: float = 60.0) -> None:
    """Require exit code 0 within ``within`` seconds and no "shutdown timeout" in the log of a process
    that was told to stop (the drain finished in time, invariant 6). AssertionError with the log tail."""
    code = await exit_code(proc, within=within)
    assert code == 0, f"{proc.connector} exited {code} after SIGTERM:\n{proc.log_tail()}"
    assert not any("shutdown timeout" in line for line in proc.lines), proc.log_tail()


async def drain_and_stop(
    proc: ConnectorProcess, broker: Any, topic: str, subscription: str, *, within: float
) -> None:
    """Wait until ``subscription`` has nothing left unacked on ``topic`` (an in-process broker), then
    :func:`stop_cleanly`. Raises AssertionError with the log tail otherwise."""

    async def drained() -> bool:
        return backlog(broker, topic, subscription) == 0

    await wait_until(drained, f"{proc.connector} drained {topic}", within=within, proc=proc)
    await stop_cleanly(proc)
