#!/bin/sh
# Install one workspace member and only its runtime dependencies, exactly as pinned in uv.lock,
# into a virtual environment. The same script runs in every image's build stage and in
# tests/deploy/test_install_step.py, so "the image's install step works" is checked without Docker.
#
#   usage: deploy/docker/install-member.sh <distribution> <venv-dir>
#   e.g.:  deploy/docker/install-member.sh danube-sink-surrealdb /opt/venv
#
# Run it from the workspace root (uv.lock and every member's pyproject.toml must be present).
# No dev group, no extras (so no chdb or test tools), members installed as wheels (no editable
# links back into the source tree), and --locked makes a stale uv.lock an error.
# Honoured environment: UV_PYTHON (interpreter), UV_COMPILE_BYTECODE, UV_LINK_MODE, UV_CACHE_DIR.
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 <distribution> <venv-dir>" >&2
    exit 2
fi
member=$1
venv=$2

# The target environment is named only by UV_PROJECT_ENVIRONMENT; an activated venv must not leak in.
unset VIRTUAL_ENV
UV_PROJECT_ENVIRONMENT=$venv
export UV_PROJECT_ENVIRONMENT

uv sync \
    --locked \
    --no-dev \
    --no-editable \
    --reinstall \
    --no-progress \
    --package "$member"
