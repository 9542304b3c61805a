"""A steady stream of payment webhooks for the fault tests, and stopping a connector process.

:class:`Load` runs ``CLIENTS`` workers that POST one payment after the other to the payments endpoint of
the flagship webhook (tests/e2e/pipeline.py's path and API key, importable by name: see conftest.py) and
record every answer. Workers never
retry: each event (keyed by its payload's ``timestamp``) is sent exactly once, so the tests can say
exactly where each one ended up.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from dataclasses import dataclass

import aiohttp
from danube_connect_core.testing import ConnectorProcess

from tests.e2e.pipeline import API_KEY, EVENTS, PATH

__all__ = ["CLIENTS", "CLIENT_TIMEOUT_S", "Answer", "Load", "payment", "stop_process"]

CLIENTS = 16
#: Longer than anything the webhook may take to answer with its default settings (30 s request timeout),
#: so a request that gets no answer within it is a hang, not a slow 503.
CLIENT_TIMEOUT_S = 45.0


@dataclass(frozen=True)
class Answer:
    """One POST: its event's key, when it was sent and answered, and how."""

    seq: int
    sent: float  # time.monotonic()
    answered: float
    status: int  # 0: no HTTP answer (see ``error``)
    retry_after: str | None
    message: str  # the JSON body's "message" of an error answer
    error: str  # the client exception when there was no answer


def payment(seq: int) -> dict[str, object]:
    """A valid payment (example_e2e/schemas/payment.json) whose ``timestamp`` is the unique key ``seq``."""
    return {"event": EVENTS[seq % len(EVENTS)], "amount": seq, "currency": "EUR", "timestamp": seq}


class Load:
    """``CLIENTS`` workers POSTing payments to ``127.0.0.1:port`` until :meth:`stop`."""

    def __init__(self, port: int, pause_s: float = 0.02) -> None:
        self.port = port
        self.pause_s = pause_s
        self.answers: list[Answer] = []
        self.next_seq = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> Load:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CLIENTS),
            timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S),
        )
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(CLIENTS)]
        return self

    async def _worker(self) -> None:
        assert self._session is not None
        url = f"http://127.0.0.1:{self.port}{PATH}"
        while not self._stop.is_set():
            seq = self.next_seq
            self.next_seq += 1
            sent = time.monotonic()
            status, retry_after, message, error = 0, None, "", ""
            try:
                async with self._session.post(url, json=payment(seq), headers={"x-api-key": API_KEY}) as r:
                    body = await r.json(content_type=None)
                    status, retry_after = r.status, r.headers.get("Retry-After")
                    message = str(body.get("message", "")) if isinstance(body, dict) else ""
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            self.answers.append(Answer(seq, sent, time.monotonic(), status, retry_after, message, error))
            await asyncio.sleep(self.pause_s)  # a steady stream, not a benchmark

    def with_status(self, status: int) -> list[Answer]:
        return [a for a in self.answers if a.status == status]

    def ok_after(self, t: float) -> list[Answer]:
        """2xx answers received after ``t`` (time.monotonic())."""
        return [a for a in self.answers if a.status == 200 and a.answered > t]

    async def stop(self) -> None:
        """Stop sending; returns when every request sent has its answer (or its client timeout)."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        if self._session is not None and not self._session.closed:
            await self._session.close()


async def stop_process(proc: ConnectorProcess, within: float = 60.0) -> int | None:
    """SIGTERM (if still running) and the exit code; None when it never started. SIGKILL, and its
    negative exit code, if it does not exit ``within`` seconds."""
    if proc.proc is None:
        return None
    if proc.proc.poll() is None:
        proc.signal(signal.SIGTERM)
    try:
        return await asyncio.to_thread(proc.wait, within)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.proc.returncode
