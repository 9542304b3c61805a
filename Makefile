# The few commands people type. Each target is a thin wrapper over scripts/ so that a machine
# without make can run the same thing with bash.
.PHONY: help test test-fast lint format typecheck proto bench demo images test-containers

help:
	@echo "make test       - bootstrap (uv, workspace, system services) and run the whole test suite"
	@echo "make test-fast  - the unit tier only (pytest -m unit: no broker, service or connector process)"
	@echo "make lint       - ruff check + format check + mypy"
	@echo "make proto      - regenerate the gRPC stubs from proto/ into danube-connect-core"
	@echo "make bench      - run the benchmarks in bench/ (not tests), write bench/results.json, render bench/README.md"
	@echo "                  (make bench QUICK=1: small sizes into a scratch dir, a smoke run)"
	@echo "make demo       - Stripe-style webhooks -> Danube -> SurrealDB on embedded defaults"
	@echo "make images     - build the 9 container images (local base images where no registry is reachable)"
	@echo "make test-containers - build the images, then run tests/containers on a Docker Engine"

test:
	bash scripts/test.sh

test-fast:
	bash scripts/bootstrap.sh
	uv run pytest -m unit

lint:
	bash scripts/bootstrap.sh
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy packages/*/src connectors/*/src examples/*/src

format:
	uv run ruff format .
	uv run ruff check --fix .

typecheck:
	uv run mypy packages/*/src connectors/*/src examples/*/src

proto:
	uv run python scripts/gen_proto.py

bench:
	bash scripts/bench.sh $(if $(QUICK),--quick)

demo:
	bash scripts/demo.sh

images:
	bash scripts/images.sh

test-containers:
	bash scripts/images.sh test
