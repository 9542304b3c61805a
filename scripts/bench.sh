#!/usr/bin/env bash
# Run every benchmark in bench/ (each prints its own ratios and writes bench/results/<name>.json).
# Benchmarks are not tests: they assert nothing and may take minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
status=0
for bench in bench/*_bench.py; do
    echo "== $bench"
    uv run python "$bench" || { echo "bench: $bench failed" >&2; status=1; }
done
exit "$status"
