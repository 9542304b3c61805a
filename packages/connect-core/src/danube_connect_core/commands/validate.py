"""`danube-connect validate FILE [--connector NAME] [--connect]`: check a connector configuration.

The connector is found from ``--connector`` or from the file's sections (the installed connector whose
section is present). Prints ``OK`` and exits 0, or prints one line naming the file and the key and exits 2.
``--connect`` also checks that the broker answers and that the connector's target is reachable (its
``initialize`` and ``health_check``), printing one line per check; ``OK`` comes only after every check
passed, and any failed check exits 2 like a configuration problem (the file cannot be run as it is).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tomllib

NAME = "validate"
HELP = "validate a connector configuration file (and with --connect, that broker and target answer)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="TOML configuration file")
    parser.add_argument("--connector", help="connector name or module:Class (default: found by section)")
    parser.add_argument("--connect", action="store_true", help="also check the broker and the target")


def run(args: argparse.Namespace) -> int:
    from ..config_loader import ConfigSpec, load_config
    from ..errors import ConfigError
    from ..lifecycle import EXIT_CONFIG, EXIT_OK
    from ..registry import ConnectorClass, ConnectorNotFound, connector_for_section, find_connector

    cls: ConnectorClass | None = None
    try:
        if args.connector:
            cls = find_connector(args.connector)
        else:
            try:
                with open(args.file, "rb") as f:
                    tables = {k for k, v in tomllib.load(f).items() if isinstance(v, dict)}
                cls = connector_for_section(tables)
            except (OSError, ValueError, RecursionError):  # TOMLDecodeError, UnicodeDecodeError: ValueError
                cls = None  # load_config reports it properly below (invariant 4: one line, exit 2)
        config = load_config(args.file, cls.config_spec() if cls else ConfigSpec())
    except ConnectorNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    what = f"connector {cls.name or cls.__name__}" if cls else "core settings only"
    if args.connect and not asyncio.run(_connect_checks(config, cls)):
        print(f"error: {args.file} ({what}): the broker or the target is not usable", file=sys.stderr)
        return EXIT_CONFIG
    print(f"OK: {args.file} ({what})")
    return EXIT_OK


async def _connect_checks(config: object, cls: object) -> bool:
    from ..client import DanubeError
    from ..config import ConnectorConfig
    from ..runtime_support import create_client

    assert isinstance(config, ConnectorConfig)
    ok = True
    client = create_client(config)
    try:
        await client.schema_registry.list_subjects()
        print(f"broker: reachable at {config.danube_service_url}")
    except DanubeError as exc:
        print(f"broker: NOT reachable at {config.danube_service_url}: {exc}")
        ok = False
    finally:
        await client.close()
    if cls is not None:
        connector = cls()  # type: ignore[operator]
        try:
            await connector.initialize(config)
            await connector.health_check()
            print("target: reachable")
        except Exception as exc:
            print(f"target: NOT reachable: {type(exc).__name__}: {exc}")
            ok = False
        finally:
            try:
                await connector.shutdown()
            except Exception as exc:
                print(f"target: shutdown failed: {exc}")
    return ok
