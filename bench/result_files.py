"""Where benchmark scripts write their results: ``bench/results/<name>.json`` by default.

``BENCH_RESULTS_DIR`` redirects every script (``scripts/bench.sh --quick`` points it at a scratch
directory, so a smoke run never overwrites the committed measurements).
"""

from __future__ import annotations

import os
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_RESULTS_DIR = BENCH_DIR / "results"


def results_dir() -> Path:
    """The directory for per-benchmark result files (created if missing)."""
    configured = os.environ.get("BENCH_RESULTS_DIR")
    path = Path(configured) if configured else DEFAULT_RESULTS_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def result_path(file_name: str) -> Path:
    """``results_dir() / file_name``, e.g. ``result_path("webhook.json")``."""
    return results_dir() / file_name
