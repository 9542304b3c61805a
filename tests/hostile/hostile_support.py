"""Shared helpers of the hostile-input tests: reproducible hypothesis settings, example collection and raw
HTTP over a socket (the topic reader is danube_connect_core.testing.topic_reader).

Imported relatively by the tests beside it (``from .hostile_support import ...``).

Reproducibility: every property here runs with ``derandomize=True`` and no example database, so a CI
run and a local run see the same examples. ``HOSTILE_RANDOM=1`` explores with fresh random examples
(locally, to look for new failures; a failure found that way is pasted as an explicit case).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
PAYMENT_SCHEMA = REPO / "schemas" / "payment.json"
CI = os.environ.get("CI") == "true"
RANDOM = os.environ.get("HOSTILE_RANDOM") == "1" and not CI

T = TypeVar("T")


def hostile_settings(max_examples: int) -> settings:
    """Bounded, deadline-free, reproducible (derandomized, no database) unless HOSTILE_RANDOM=1."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def collect(strategy: st.SearchStrategy[T], n: int) -> list[T]:
    """``n`` examples of ``strategy`` drawn by hypothesis (sent afterwards to one running process, since
    an example does not need a fresh connector)."""
    out: list[T] = []

    @hostile_settings(n)
    @given(strategy)
    def run(value: T) -> None:
        out.append(value)

    run()
    return out


def payment(i: int, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event": "payment.succeeded",
        "amount": 100 + i,
        "currency": "USD",
        "timestamp": 1_705_000_000 + i,
    }
    doc.update(overrides)
    return doc


def payment_schema(topic: str, subject: str) -> dict[str, Any]:
    return {
        "topic": topic,
        "subject": subject,
        "schema_type": "json_schema",
        "schema_file": str(PAYMENT_SCHEMA),
    }


# -- raw HTTP ------------------------------------------------------------------------------------------


@dataclass
class RawAnswer:
    status: int | None  # None: the server closed without an answer
    head: bytes
    body: bytes


async def read_answer(reader: asyncio.StreamReader, within: float = 30.0) -> RawAnswer:
    """One HTTP/1.1 response (status line, headers, Content-Length body) or status None on close."""
    async with asyncio.timeout(within):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            partial = exc.partial if isinstance(exc, asyncio.IncompleteReadError) else b""
            return RawAnswer(None, partial, b"")
        status_line = head.split(b"\r\n", 1)[0]
        status = int(status_line.split(b" ")[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = b""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            body = await reader.readexactly(length)
        return RawAnswer(status, head, body)


async def raw_request(port: int, data: bytes, within: float = 30.0) -> RawAnswer:
    """Write ``data`` as it is on a new connection and read one answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return await read_answer(reader, within)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# -- reading a topic back ---------------------------------------------------------------------------
