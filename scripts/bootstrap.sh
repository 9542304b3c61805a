#!/usr/bin/env bash
# Prepare this checkout for tests and demos on a fresh machine (sourced by scripts/test.sh and scripts/demo.sh).
#  1. uv: installed with pip into the user site when missing (the only thing we put outside the repo).
#  2. the workspace, every member: `uv sync --locked --all-packages` (fails loudly when uv.lock is stale).
#  3. with BOOTSTRAP_SYSTEM=1: the system services the integration tests start themselves
#     (mosquitto, PostgreSQL 15 with wal2json) and what the container tier needs (Docker Engine from
#     Debian's docker.io, debootstrap for the local base images): installed with apt when running as root; otherwise
#     listed with the command that installs them, and the tests that need them skip (or fail under CI=true).
#     Java 17 and Maven (apt) fetch the Apache Kafka broker the Kafka source's tests start: its jars from
#     Maven Central into a cache directory (scripts/install_kafka.sh, idempotent).
set -euo pipefail

export PATH="$HOME/.local/bin:$PATH"

ensure_uv() {
    command -v uv >/dev/null 2>&1 && return 0
    echo "bootstrap: installing uv with pip (user site)" >&2
    # Debian marks its Python as externally managed (PEP 668); uv is a self-contained binary, safe in the user site.
    python3 -m pip install --user --quiet uv 2>/dev/null \
        || python3 -m pip install --user --quiet --break-system-packages uv
    command -v uv >/dev/null 2>&1 || { echo "bootstrap: uv is not on PATH after install" >&2; return 1; }
}

missing_system_packages() {
    local missing=()
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
    ls /usr/lib/postgresql/15/lib/wal2json.so >/dev/null 2>&1 || missing+=(postgresql-15-wal2json)
    # Container tier (scripts/images.sh, tests/containers): dockerd + containerd + runc, and the client at
    # /usr/bin/docker with BuildKit built in; debootstrap makes the local base images.
    [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
    # The Kafka broker (scripts/install_kafka.sh) runs on a JRE and is fetched with Maven.
    command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
    echo "${missing[@]:-}"
}

ensure_system_packages() {
    local missing
    missing=$(missing_system_packages)
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing system packages: $missing" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
        # Debian starts a default cluster and a broker on install; the tests run their own private ones.
        (service postgresql stop || true) >/dev/null 2>&1
        (service mosquitto stop || true) >/dev/null 2>&1
        # scripts/images.sh starts a private dockerd when none answers; Debian's service may not start here.
        (service docker stop || true) >/dev/null 2>&1
    else
        echo "bootstrap: missing system packages: $missing" >&2
        echo "bootstrap: install them with: sudo apt-get install -y $missing" >&2
        echo "bootstrap: tests that need them will be skipped (and fail when CI=true)" >&2
    fi
}

ensure_uv
cd "$(dirname "${BASH_SOURCE[0]}")/.."
uv sync --locked --all-packages --quiet
if [ "${BOOTSTRAP_SYSTEM:-0}" = "1" ]; then
    ensure_system_packages
    # Without java/mvn it says what is missing; the Kafka tests then skip (and fail under CI=true).
    bash scripts/install_kafka.sh || echo "bootstrap: Apache Kafka not installed: the Kafka tests will skip" >&2
fi
