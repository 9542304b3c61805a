"""Process lifecycle: signals, exit codes and the entry point every connector's console script uses.

Invariant 6: the first SIGTERM/SIGINT stops intake and lets the runtime drain (finish in-flight work,
flush batches, ack/commit, ``shutdown()``) within ``processing.shutdown_timeout_ms``; exit 0 when that
completes. A second signal, or the timeout, ends the process at once with exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from danube_connect_core.config import ConnectorConfig
from danube_connect_core.config_loader import load_config
from danube_connect_core.errors import ConfigError
from danube_connect_core.logging_setup import configure_logging

if TYPE_CHECKING:
    from danube_connect_core.connector import SinkConnector, SourceConnector
    from danube_connect_core.registry import ConnectorClass

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FATAL",
    "EXIT_OK",
    "ShutdownSignals",
    "connector_main",
    "exit_process",
    "run_connector",
    "run_runtime",
]

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_CONFIG = 2

log = logging.getLogger("danube_connect.lifecycle")


class ShutdownSignals:
    """Sets ``stop`` on the first SIGTERM/SIGINT; the second calls ``force`` (default: ``os._exit(1)``)."""

    def __init__(self, stop: asyncio.Event, force: Callable[[], None] | None = None) -> None:
        self.stop = stop
        self.force = force or (lambda: os._exit(EXIT_FATAL))
        self.count = 0
        self._installed: list[signal.Signals] = []

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                self._installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread / Windows
                pass

    def uninstall(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()

    def _on_signal(self, sig: signal.Signals) -> None:
        self.count += 1
        if self.count == 1:
            log.info("received %s: stopping intake and draining", sig.name)
            self.stop.set()
        else:
            log.warning("received %s again: exiting now", sig.name)
            self.force()


def _new_runtime(connector: SourceConnector | SinkConnector, config: ConnectorConfig) -> object:
    from danube_connect_core.connector import SinkConnector
    from danube_connect_core.sink_runtime import SinkRuntime
    from danube_connect_core.source_runtime import SourceRuntime

    if isinstance(connector, SinkConnector):
        return SinkRuntime(connector, config)
    return SourceRuntime(connector, config)


async def run_runtime(connector: SourceConnector | SinkConnector, config: ConnectorConfig) -> int:
    """Run a connector until it stops; returns the exit code. Installs the signal handlers."""
    runtime = _new_runtime(connector, config)
    stop = asyncio.Event()
    signals = ShutdownSignals(stop)
    loop = asyncio.get_running_loop()
    signals.install(loop)
    try:
        code: int = await runtime.run(stop)  # type: ignore[attr-defined]
        return code
    finally:
        signals.uninstall(loop)


def run_connector(cls: ConnectorClass, config_path: str | None) -> int:
    """Load the config for ``cls``, configure logging and run it; returns the exit code (0, 1 or 2)."""
    try:
        config = load_config(config_path, cls.config_spec())
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.processing.log_level, config.processing.log_format)
    connector = cls()
    try:
        # Plain asyncio on purpose: grpc.aio streams stall under uvloop (measured: a consumer received
        # nothing), so uvloop is not used even where installed.
        return asyncio.run(run_runtime(connector, config))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:  # pragma: no cover - a signal before the handlers were installed
        return EXIT_FATAL


def exit_process(code: int) -> NoReturn:
    """End a connector process with ``code`` once its runtime has returned: flush logs and the standard
    streams, then ``os._exit`` without interpreter finalization.

    Why not a plain ``sys.exit``: sinks embed native engines (surrealkv, chdb, delta-rs) that run their
    own threads. A Rust task still running when the runtime returns (a query whose Python side timed
    out or was cancelled) calls back into Python when it ends. While the interpreter finalizes, CPython ends
    such a thread with ``pthread_exit`` through Rust frames that cannot unwind; after it, pyo3 panics ("The
    Python interpreter is not initialized"). Either way the process aborts. Measured: a SurrealDB sink
    drained, logged "stopped (exit code 0)" and died with SIGABRT ("panic in a function that cannot
    unwind") in a fault test; a script that leaves one such query behind aborted in 3 of 8 runs
    with ``sys.exit`` and in none with this function. By this point everything is acked, committed and
    closed, so skipping finalization loses nothing, and the exit code is the drain's result
    (docs/operations.md §5), not the native libraries' teardown. A thread a library leaves behind cannot
    hold the process open either.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (OSError) or stream (ValueError): nothing more can be said anyway.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def connector_main(cls: ConnectorClass, argv: Sequence[str] | None = None) -> NoReturn:
    """The console script of one connector: ``<script> [--config FILE] [--check]``."""
    parser = argparse.ArgumentParser(
        prog=cls.name or cls.__name__, description=(cls.__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--config", help="TOML file (default: $CONNECTOR_CONFIG_PATH)")
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    args = parser.parse_args(argv)
    if args.check:
        try:
            load_config(args.config, cls.config_spec())
        except ConfigError as exc:
            print(f"config error: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG) from None
        print("configuration OK")
        raise SystemExit(EXIT_OK)
    exit_process(run_connector(cls, args.config))
