"""`danube-connect run NAME --config FILE`: run an installed connector (or ``package.module:Class``).

Exit codes: 0 after a clean shutdown, 1 on a fatal runtime error, 2 on a configuration error
(including an unknown connector name).
"""

from __future__ import annotations

import argparse
import sys

NAME = "run"
HELP = "run a connector (entry point in group danube_connect.connectors, or module:Class)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("connector", help="connector name (see `danube-connect run --list`) or module:Class")
    parser.add_argument("--config", help="TOML file (default: $CONNECTOR_CONFIG_PATH)")


def run(args: argparse.Namespace) -> int:
    """Run the connector; once it has started, this ends the process (``lifecycle.exit_process``)."""
    from ..lifecycle import EXIT_CONFIG, exit_process, run_connector
    from ..registry import ConnectorNotFound, find_connector

    try:
        cls = find_connector(args.connector)
    except ConnectorNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    exit_process(run_connector(cls, args.config))
