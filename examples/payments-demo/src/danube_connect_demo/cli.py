"""`danube-connect-demo`: Stripe-style payment webhooks -> Danube -> SurrealDB on embedded defaults.

Starts the embedded broker, the webhook source and the SurrealDB sink (embedded surrealkv store) as three
processes, sends payment events, waits until they are stored, prints the count per event type, then keeps
running until Ctrl-C (``--once``: exits after the table). Needs the ``danube-embedded-broker``,
``danube-source-webhook`` and ``danube-sink-surrealdb`` packages installed (found as console scripts;
nothing is imported from them). Exit codes: 0 success or stopped by Ctrl-C/SIGTERM, 1 failure, 2 bad
arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

HELP = "Run the payments pipeline (webhook -> Danube -> SurrealDB) on embedded defaults."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="danube-connect-demo", description=HELP)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("demo-data"),
        help="state, configs, logs (default: %(default)s)",
    )
    parser.add_argument("--once", action="store_true", help="exit after printing the table")
    parser.add_argument("--events", type=int, default=100, help="events to send (default: %(default)s)")
    parser.add_argument(
        "--webhook-port",
        type=int,
        default=8080,
        help="webhook port, 0: a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--broker-port", type=int, default=0, help="embedded broker gRPC port (default: a free one)"
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the broker and SurrealDB data of an earlier run"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed for the events")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each step (default: %(default)s)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from danube_connect_demo.runner import DemoOptions, run_demo

    if args.events < 0:
        print("demo: --events must be 0 or more")
        return 2
    return run_demo(
        DemoOptions(
            data_dir=args.data_dir,
            events=args.events,
            once=args.once,
            webhook_port=args.webhook_port,
            broker_port=args.broker_port,
            keep_data=args.keep_data,
            seed=args.seed,
            timeout_s=args.timeout,
        )
    )


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(build_parser().parse_args(argv)))
