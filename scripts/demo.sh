#!/usr/bin/env bash
# The README's demo command: prepare a fresh machine (uv + the workspace from uv.lock), then run the
# Stripe-style payments pipeline (webhook -> Danube -> SurrealDB) on embedded defaults.
# Arguments go to `danube-connect-demo` (examples/payments-demo), e.g.
# `bash scripts/demo.sh --once --webhook-port 0`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
# exec: Ctrl-C and SIGTERM go straight to the demo, which stops its processes in order.
exec uv run --quiet danube-connect-demo "$@"
