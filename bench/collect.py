"""Collect every benchmark's result file into one results.json with the machine description.

    uv run python bench/collect.py [--results-dir bench/results] [--output bench/results.json]
                                   [--started EPOCH_SECONDS] [--load-start "1.2 0.9 0.7"] [--failed a,b]

Each ``<name>.json`` of the results directory becomes ``benchmarks[<name>]`` (``client_bench.json`` ->
``client``), with the file's modification time and ``fresh``: whether this run wrote it (modified after
``--started``). A benchmark that failed in this run keeps its previous file, marked stale and listed under
``run.failed``, so a reader never mistakes an old number for a new one. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from machine_info import describe
from result_files import BENCH_DIR, results_dir

#: The order benchmarks appear in (the rest follow alphabetically).
ORDER = (
    "broker",
    "client",
    "runtime",
    "webhook",
    "mqtt",
    "cdc",
    "kafka",
    "surrealdb",
    "deltalake",
    "clickhouse",
    "qdrant",
    "http",
    "e2e",
)


def benchmark_name(path: Path) -> str:
    return path.stem.removesuffix("_bench")


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def collect(
    directory: Path, started: float | None, load_start: list[float] | None, failed: list[str], mode: str
) -> dict[str, Any]:
    """The combined document (see the module docstring)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        mtime = path.stat().st_mtime
        found[benchmark_name(path)] = {
            "file": path.name,
            "modified": iso(mtime),
            "fresh": started is None or mtime >= started,
            "data": json.loads(path.read_text()),
        }
    ordered = {name: found[name] for name in ORDER if name in found}
    ordered.update({name: found[name] for name in sorted(found) if name not in ordered})
    return {
        "generated_by": "scripts/bench.sh (make bench) -> bench/collect.py",
        "run": {
            "mode": mode,
            "started": iso(started) if started is not None else None,
            "finished": iso(time.time()),
            "failed": failed,
        },
        "machine": describe(load_start),
        "benchmarks": ordered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--results-dir", type=Path, default=None, help="default: BENCH_RESULTS_DIR, else bench/results"
    )
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results.json")
    parser.add_argument("--started", type=float, default=None, help="run start, seconds since the epoch")
    parser.add_argument("--load-start", default=None, help="load average at the start: three numbers")
    parser.add_argument("--failed", default="", help="comma-separated benchmarks that failed in this run")
    parser.add_argument("--mode", default="full", choices=["full", "quick"])
    args = parser.parse_args()
    load_start = [float(x) for x in args.load_start.split()[:3]] if args.load_start else None
    failed = [name for name in args.failed.split(",") if name]
    document = collect(args.results_dir or results_dir(), args.started, load_start, failed, args.mode)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    stale = [name for name, b in document["benchmarks"].items() if not b["fresh"]]
    print(f"collected {len(document['benchmarks'])} benchmarks into {args.output}")
    if stale:
        print(f"not measured in this run (previous results kept, marked stale): {', '.join(stale)}")


if __name__ == "__main__":
    main()
