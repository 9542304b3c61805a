"""Console entry point ``danube-embedded-broker``.

Prints exactly one line to stdout when serving (``danube-embedded-broker ready at http://HOST:PORT``,
flushed); logs go to stderr. SIGTERM or SIGINT stops cleanly (streams ended, cursors and logs
flushed) and exits 0. Exit 2 for bad arguments, 1 when the broker cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from danube_embedded_broker.config import FSYNC_POLICIES, POISON_POLICIES, BrokerConfig
from danube_embedded_broker.server import EmbeddedBroker

READY_PREFIX = "danube-embedded-broker ready at "
log = logging.getLogger("danube_embedded_broker")


def build_parser() -> argparse.ArgumentParser:
    d = BrokerConfig()
    p = argparse.ArgumentParser(
        prog="danube-embedded-broker",
        description="Single-node Danube-compatible broker for local runs, demos and tests "
        "(not for production).",
    )
    p.add_argument("--host", default=d.host, help="interface to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=6650, help="gRPC port, 0: a free one (default %(default)s)")
    p.add_argument("--data-dir", type=Path, default=None, help="durable storage (default: a temp dir)")
    p.add_argument(
        "--namespace", action="append", default=[], metavar="NAME",
        help="namespace to create (repeatable; 'default' and 'system' always exist)",
    )  # fmt: skip
    p.add_argument("--metrics-port", type=int, default=None, help="Prometheus exporter port (off by default)")
    p.add_argument("--max-unacked", type=int, default=d.max_unacked_messages, help="in-flight window")
    p.add_argument("--ack-timeout-ms", type=int, default=d.ack_timeout_ms)
    p.add_argument("--redelivery-base-ms", type=int, default=d.redelivery_base_ms)
    p.add_argument("--redelivery-max-ms", type=int, default=d.redelivery_max_ms)
    p.add_argument("--max-redeliveries", type=int, default=d.max_redeliveries)
    p.add_argument("--poison-policy", choices=POISON_POLICIES, default=d.poison_policy)
    p.add_argument("--no-auto-create-topics", action="store_true", help="CreateProducer never creates topics")
    p.add_argument("--max-message-bytes", type=int, default=d.max_message_bytes)
    p.add_argument(
        "--auth-secret-env", metavar="VAR", default=None,
        help="enable JWT (HS256) auth with the secret read from this environment variable",
    )  # fmt: skip
    p.add_argument("--fsync", choices=FSYNC_POLICIES, default=d.fsync)
    p.add_argument("--fsync-interval-ms", type=int, default=d.fsync_interval_ms)
    p.add_argument("--consumer-buffer", type=int, default=d.consumer_buffer, help="non-reliable buffer")
    p.add_argument("--advertised-url", default=None, help="URL returned by topic lookups")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def config_from_args(args: argparse.Namespace) -> BrokerConfig:
    """Raises ``ValueError`` with a message naming the bad option."""
    secret: str | None = None
    if args.auth_secret_env:
        secret = os.environ.get(args.auth_secret_env)
        if not secret:
            raise ValueError(f"--auth-secret-env: variable {args.auth_secret_env} is not set or empty")
    return BrokerConfig(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        namespaces=tuple(args.namespace) or ("default",),
        max_unacked_messages=args.max_unacked,
        ack_timeout_ms=args.ack_timeout_ms,
        redelivery_base_ms=args.redelivery_base_ms,
        redelivery_max_ms=args.redelivery_max_ms,
        max_redeliveries=args.max_redeliveries,
        poison_policy=args.poison_policy,
        auto_create_topics=not args.no_auto_create_topics,
        max_message_bytes=args.max_message_bytes,
        auth_secret=secret,
        metrics_port=args.metrics_port,
        fsync=args.fsync,
        fsync_interval_ms=args.fsync_interval_ms,
        consumer_buffer=args.consumer_buffer,
        advertised_url=args.advertised_url,
    )


async def serve(config: BrokerConfig) -> int:
    broker = EmbeddedBroker(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        url = await broker.start()
    except Exception as exc:
        log.error("cannot start: %s", exc)
        return 1
    sys.stdout.write(f"{READY_PREFIX}{url}\n")
    sys.stdout.flush()
    await stop.wait()
    log.info("stopping")
    await broker.stop()
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = config_from_args(args)
    except ValueError as exc:
        sys.stderr.write(f"danube-embedded-broker: {exc}\n")
        raise SystemExit(2) from None
    raise SystemExit(asyncio.run(serve(config)))


if __name__ == "__main__":
    main()
