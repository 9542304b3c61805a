#!/usr/bin/env bash
# The README's test command: prepare a fresh machine, then run the whole suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k broker -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
BOOTSTRAP_SYSTEM=1 source scripts/bootstrap.sh

set +e
uv run pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit "$rc"
