"""The `danube-connect` umbrella command: a small dispatcher over the subcommands in :mod:`.commands`.

Each module of ``danube_connect_core/commands/`` that defines ``NAME``, ``HELP``, ``configure(parser)``
and ``run(args) -> int`` is a subcommand; adding one is adding a module, nothing here changes.
Exit codes (docs/operations.md §5): 0 success, 1 runtime error, 2 usage/configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from . import commands


def discover_commands() -> dict[str, ModuleType]:
    """Subcommand modules by name, in alphabetical order of their module names."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        name = getattr(module, "NAME", None)
        if isinstance(name, str) and callable(getattr(module, "run", None)):
            found[name] = module
    return found


def build_parser(available: dict[str, ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="danube-connect", description="Danube Connect command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in available.items():
        help_text = getattr(module, "HELP", None)
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    available = discover_commands()
    parser = build_parser(available)
    args = parser.parse_args(argv)
    code: int = available[args.command].run(args)
    sys.exit(code)
