"""Wait for a connector under test: its health endpoints and the values it logs at start.

Every wait polls with a generous deadline (tests run on small shared machines; speed is for bench/), and
fails fast with the process's last log lines when the process it waits for has exited.

- :func:`wait_for_status` - until ``GET <path>`` on a loopback port answers a status (``/ready`` 200 by
  default); returns the body;
- :func:`start_ready` - start a :class:`ConnectorProcess`, wait for its metrics port and ``/ready`` 200;
- :func:`logged_int` - an integer a process logged as a JSON field (``"webhook_port": 41234``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.error
from typing import Any

from danube_connect_core.testing.harness import ConnectorProcess, http_get

__all__ = ["logged_int", "start_ready", "wait_for_status"]

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
