"""Wait for a connector under test: its health endpoints and the values it logs at start.

Every wait polls with a generous deadline (tests run on small shared machines; speed is for bench/), and
fails fast with the process's last log lines when the process it waits for has exited.

- :func:`wait_for_status` - until ``GET <path>`` on a loopback port answers a status (``/ready`` 200 by
  default); returns the body;
- :func:`start_ready` - start a :class:`ConnectorProcess`, wait for its metrics port and ``/ready`` 200;
- :func:`logged_int` - an integer a process logged as a JSON field (``"webhook_port": 41234``);
- :func:`settled` - poll any reading until it shows the expected value (returns the last reading);
- :func:`metric_sum` - a metric summed over its series in Prometheus text;
- :func:`metric_value`, :func:`metric_settled` - a connector's Prometheus metric, read once or polled.

Effect observed, bookkeeping not yet: a sink's rows can be in the target before its ``sent`` counter moves,
and the broker can count its acks (which go out in the background) before its in-flight gauge settles; a
source's message can reach a consumer before the answer to its publish moves ``sent``/``dead_lettered``
or commits the offset upstream. A test that saw one effect reads the other with :func:`settled`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.error
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from danube_connect_core.testing.harness import ConnectorProcess, http_get

__all__ = [
    "logged_int",
    "metric_settled",
    "metric_sum",
    "metric_value",
    "settled",
    "start_ready",
    "wait_for_status",
]

T = TypeVar("T")

#: The kinds of process a wait can watch: the harness's ConnectorProcess or a plain Popen.
Watched = ConnectorProcess | subprocess.Popen[Any] | None


def _exited(proc: Watched) -> str | None:
    """A description of how ``proc`` ended, or None while it runs (or when there is none)."""
    if isinstance(proc, ConnectorProcess):
        if proc.proc is not None and proc.proc.poll() is not None:
            return f"{proc.connector} exited with {proc.proc.returncode}:\n{proc.log_tail()}"
        return None
    if proc is not None and proc.poll() is not None:
        return f"process {proc.args!r} exited with {proc.returncode}"
    return None


async def wait_for_status(
    port: int,
    path: str = "/ready",
    status: int = 200,
    *,
    within: float = 60.0,
    proc: Watched = None,
    interval: float = 0.05,
) -> str:
    """Poll ``GET http://127.0.0.1:<port><path>`` until it answers ``status``; return that answer's body.

    A refused or reset connection counts as "not yet" (the server may still be binding). Raises
    AssertionError at once when ``proc`` exits first (with its log tail), TimeoutError after ``within``
    seconds naming the last answer.
    """
    last = "no answer"
    try:
        async with asyncio.timeout(within):
            while True:
                try:
                    code, body = await asyncio.to_thread(http_get, port, path)
                except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                    last = f"no answer ({exc})"
                else:
                    if code == status:
                        return body
                    last = f"{code} {body[:300]!r}"
                if (ended := _exited(proc)) is not None:
                    raise AssertionError(f"waiting for {path} {status}: {ended}")
                await asyncio.sleep(interval)
    except TimeoutError:
        message = f"{path} on port {port} did not answer {status} within {within} s: {last}"
        raise TimeoutError(message) from None


async def start_ready(proc: ConnectorProcess, within: float = 60.0) -> int:
    """Start ``proc`` unless it runs already, wait until it logged its metrics port and ``/ready``
    answers 200 there (subscribed or producers created, target reachable); return the metrics port.

    Raises AssertionError with the process's log tail when it exits first or ``within`` seconds pass.
    """
    if proc.proc is None:
        proc.start()
    try:
        port = await asyncio.to_thread(proc.metrics_port, within)
        await wait_for_status(port, "/ready", 200, within=within, proc=proc)
    except (RuntimeError, TimeoutError) as exc:
        raise AssertionError(f"{proc.connector} not ready: {exc}\n{proc.log_tail()}") from None
    return port


def logged_int(proc: ConnectorProcess, key: str, within: float = 60.0) -> int:
    """The integer value of JSON field ``key`` in the first log line of ``proc`` that has it (blocking;
    call through asyncio.to_thread in async code). AssertionError when the process exits or ``within``
    seconds pass first."""
    deadline = time.monotonic() + within
    while True:
        for line in list(proc.lines):
            if f'"{key}"' in line:
                try:
                    return int(json.loads(line)[key])
                except (ValueError, KeyError):
                    pass
        assert proc.proc is not None, "the process was not started"
        if proc.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {key} logged (exit {proc.proc.poll()}):\n{proc.log_tail()}")
        time.sleep(0.02)


async def settled(
    read: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    within: float = 60.0,
    interval: float = 0.05,
) -> T:
    """Poll ``read()`` until ``done(value)`` holds and return that value; after ``within`` seconds return
    the last value read instead of raising, so the caller's assertion on it shows what it was.

    For state another task or process updates a little after the effect a test waited for (a counter moved
    when an answer comes back, a gauge settled after an ack, an offset committed after the broker's ack).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await read()
        if done(value) or loop.time() > deadline:
            return value
        await asyncio.sleep(interval)


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` in Prometheus text ``text`` whose labels include ``labels``
    (0 when there is none)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def metric_value(port: int, name: str, **labels: str) -> float:
    """The sum of metric ``name`` on ``GET /metrics`` of a connector on ``port`` over the series whose
    labels include ``labels`` (0 when there is none); AssertionError when ``/metrics`` does not answer 200."""
    status, text = await asyncio.to_thread(http_get, port, "/metrics")
    assert status == 200, f"/metrics answered {status}: {text[:300]!r}"
    return metric_sum(text, name, **labels)


async def metric_settled(port: int, name: str, value: float, *, within: float = 60.0, **labels: str) -> float:
    """:func:`metric_value` once it reads ``value``, or its last reading after ``within`` seconds (assert
    on the result: a failure then shows the actual value)."""
    return await settled(lambda: metric_value(port, name, **labels), lambda v: v == value, within=within)
