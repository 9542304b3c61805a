"""Shared helpers for the scripts that drive the official `danube-client` 0.5.0 (import name `danube`).

These scripts run in their own interpreter (`python script.py ...`): the official wheel registers the
same proto file names as our stubs in protobuf's default pool, so it never shares a process with
`danube_connect_core` (docs/wire-contract.md §1). Every script prints one JSON object per line on stdout;
the last line is `{"event": "done", ...}` on success or `{"event": "error", ...}` (exit code 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from danube import DanubeClient, DanubeClientBuilder


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}, sort_keys=True), flush=True)


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True, help="broker URL, e.g. http://127.0.0.1:6650")
    parser.add_argument("--timeout", type=float, default=60.0, help="hang guard for the whole script (s)")
    return parser


async def build_client(url: str) -> DanubeClient:
    return await DanubeClientBuilder().service_url(url).build()


async def close_client(client: DanubeClient) -> None:
    # danube-client 0.5.0 has no DanubeClient.close(): Producer.close()/Consumer.close() only stop the
    # health-check tasks and leave every grpc.aio channel open, which grpc reports at interpreter exit.
    # Close the pooled channels ourselves (private attribute; 0.5.0 is pinned).
    for conn in list(client.connection_manager._connections.values()):
        await conn.channel.close()


def message_fields(msg: Any) -> dict[str, Any]:
    """A received StreamMessage as JSON-friendly fields."""
    return {
        "payload": msg.payload.decode("utf-8", errors="backslashreplace"),
        "topic": msg.msg_id.topic_name,
        "offset": msg.msg_id.topic_offset,
        "producer_id": msg.msg_id.producer_id,
        "producer_name": msg.producer_name,
        "subscription": msg.subscription_name,
        "request_id": msg.request_id,
        "publish_time": msg.publish_time,
        "attributes": dict(msg.attributes),
        "schema_id": msg.schema_id if msg.HasField("schema_id") else None,
        "schema_version": msg.schema_version if msg.HasField("schema_version") else None,
        "routing_key": msg.routing_key if msg.HasField("routing_key") else None,
    }


def run(main: Callable[[argparse.Namespace], Awaitable[None]], args: argparse.Namespace) -> None:
    """Run `main(args)` under the hang guard; report failures as an `error` event and exit code 2."""

    async def guarded() -> None:
        async with asyncio.timeout(args.timeout):
            await main(args)

    try:
        asyncio.run(guarded())
    except BaseException as exc:  # report everything, including the timeout, as one JSON line
        if isinstance(exc, SystemExit | KeyboardInterrupt):
            raise
        emit("error", type=type(exc).__name__, message=str(exc), traceback=traceback.format_exc())
        sys.exit(2)
