#!/usr/bin/env bash
# The README's test command: prepare a fresh machine, then run the whole suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k broker -x`).
#
# Without arguments, the container tier runs after the other tests: `bash scripts/images.sh test` builds the
# 10 images (and the local base images where no registry is reachable) on a Docker Engine, then runs
# tests/containers. No engine: skipped with a message, or a failure under CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
BOOTSTRAP_SYSTEM=1 source scripts/bootstrap.sh

run_pytest() {
    local rc=0
    uv run pytest "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "test.sh: pytest collected no tests; treating that as a failure" >&2
        rc=1
    fi
    return "$rc"
}

# A Docker Engine is usable when one answers already, or scripts/images.sh can start its own (root + dockerd).
docker_possible() {
    local client=${DOCKER:-/usr/bin/docker}
    [ -x "$client" ] || return 1
    "$client" version >/dev/null 2>&1 && return 0
    [ "$(id -u)" = 0 ] && [ -x /usr/sbin/dockerd ]
}

rc=0
run_pytest --ignore=tests/containers "$@" || rc=$?
if [ "$#" -eq 0 ]; then
    if [ "${CI:-}" = "true" ] || docker_possible; then
        echo "test.sh: container tier (scripts/images.sh test)" >&2
        started=$(date +%s)
        bash scripts/images.sh test || { [ "$rc" -ne 0 ] || rc=1; }
        echo "test.sh: container tier took $(( $(date +%s) - started )) s" >&2
    else
        echo "test.sh: no Docker Engine (install docker.io, or set DOCKER_HOST): container tier skipped" >&2
    fi
fi
exit "$rc"
