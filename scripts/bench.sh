#!/usr/bin/env bash
# `make bench`: run every benchmark in bench/ (bench/*_bench.py, the end-to-end load test included),
# collect their results into bench/results.json with the machine description, then render
# bench/README.md's summary section and bench/e2e.png from it (bench/render.py).
# Benchmarks are not tests: they assert nothing. The last complete run (2026-12-02, quiet 2-core machine)
# took 7 minutes; benchmarks and floors added since make it longer, and machine load stretches it.
#
#   bash scripts/bench.sh            full sizes; writes bench/results/*.json, results.json, README, e2e.png
#   bash scripts/bench.sh --quick    smoke run with small sizes (quick_args below; a benchmark without
#                                    an entry runs at its defaults); everything goes to a scratch
#                                    directory (printed), the committed results stay untouched
#   BENCH_ONLY="webhook e2e" bash scripts/bench.sh   run only these benchmarks (collect and render as usual)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
case "${1:-}" in
    "") ;;
    --quick) mode=quick ;;
    *) echo "usage: bash scripts/bench.sh [--quick]" >&2; exit 2 ;;
esac

# mosquitto, PostgreSQL and Kafka (mqtt, cdc and kafka benchmarks) are installed the same way the tests
# get them.
BOOTSTRAP_SYSTEM=1 source scripts/bootstrap.sh
# The renderer's plot needs matplotlib, which lives in the `bench` dependency group only (the default
# sync that tests and CI use does not install it, and removes it again: hence `uv run --group bench`
# for the renderer below, which puts it back if another sync took it away meanwhile).
uv sync --locked --all-packages --group bench --quiet

# Small sizes for --quick, per benchmark (arguments of each script).
quick_args() {
    case "$1" in
        broker) echo "--scale 0.1 --repeats 1" ;;
        cdc) echo "--rows 300 --repeats 1" ;;
        clickhouse | deltalake) echo "--messages 400 --batch 100" ;;
        client | runtime) echo "--messages 300" ;;
        e2e) echo "--quick" ;;
        http) echo "--records 300" ;;
        kafka) echo "--records 2000 --repeats 1" ;;
        mqtt) echo "--messages 300 --repeats 1" ;;
        otel) echo "--requests 300 --repeats 1" ;;
        qdrant) echo "--records 300 --batch-size 50" ;;
        surrealdb) echo "--messages 300 --batch 50" ;;
        webhook) echo "--requests 300 --repeats 1" ;;
        *) echo "" ;;
    esac
}

if [ "$mode" = quick ]; then
    out_dir=$(mktemp -d -t danube-bench-quick.XXXXXX)
    export BENCH_RESULTS_DIR="$out_dir/results"
    results_json="$out_dir/results.json"
    readme="$out_dir/README.md"
    cp bench/README.md "$readme"
    echo "bench: quick run, results in $out_dir"
else
    unset BENCH_RESULTS_DIR
    results_json=bench/results.json
    readme=bench/README.md
fi

started=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
failed=()
for bench in bench/*_bench.py; do
    name=$(basename "$bench" _bench.py)
    if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $name "* ]]; then
        continue
    fi
    args=()
    if [ "$mode" = quick ]; then
        read -r -a args <<<"$(quick_args "$name")"
    fi
    echo "== $bench ${args[*]:-}"
    uv run python "$bench" "${args[@]}" || { echo "bench: $bench failed" >&2; failed+=("$name"); }
done

joined=$(IFS=,; echo "${failed[*]:-}")
uv run python bench/collect.py --output "$results_json" --started "$started" \
    --load-start "$load_start" --failed "$joined" --mode "$mode"
uv run --locked --all-packages --group bench python bench/render.py \
    --results "$results_json" --readme "$readme"

if [ "${#failed[@]}" -gt 0 ]; then
    echo "bench: failed: ${failed[*]} (their previous results, if any, are marked stale)" >&2
    exit 1
fi
