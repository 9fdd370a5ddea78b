# Developer and CI entry points. `make` or `make help` lists the targets.
SHELL := bash
.DEFAULT_GOAL := help

PYTEST_ARGS ?=
PORT ?= 8000
DATA_DIR ?= .potluck
export POTLUCK_DATA_DIR ?= $(DATA_DIR)

.PHONY: help deps test run check lint typecheck imports fmt contract

help: ## List the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_.-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

deps: ## Install system packages (apt, as root) and the locked Python env (uv sync --frozen)
	bash scripts/install-deps.sh

test: deps ## Run the test suite against real PostgreSQL and Redis (extra args: PYTEST_ARGS=...)
	uv run pytest $(PYTEST_ARGS)

# The full topology on this machine (state in .cluster/, or $POTLUCK_CLUSTER_DIR).
CLUSTER_ARGS ?=

.PHONY: up down status

up: ## Start PostgreSQL + replicas, Redis, API processes and nginx on :8080 (extra args: CLUSTER_ARGS=...)
	uv run potluck cluster up $(CLUSTER_ARGS)

down: ## Stop the local cluster, keeping its data (CLUSTER_ARGS=--purge deletes it)
	uv run potluck cluster down $(CLUSTER_ARGS)

status: ## Print the local cluster's endpoints and health as JSON (exit 1 when it is not up)
	uv run potluck cluster status

run: ## Run Potluck on the embedded default (SQLite, in-process cache) with demo data at 127.0.0.1:$(PORT)
	bash scripts/install-deps.sh --python-only
	uv run potluck migrate
	uv run potluck seed --if-empty --users 500 --recipes 5000
	@echo "Potluck: http://127.0.0.1:$(PORT)/docs  (log in as any seeded user with the password potluck-demo)"
	POTLUCK_OBSERVABILITY__LOG_JSON=false uv run potluck serve --port $(PORT)

lint: ## ruff (lint and format check)
	uv run ruff check src tests bench
	uv run ruff format --check src tests bench

typecheck: ## mypy, strict
	uv run mypy

imports: ## import-linter: the layers contract in pyproject.toml (an import only points down the layers)
	uv run lint-imports

contract: ## schemathesis against `potluck serve` (all checks and phases, seed 1; allow-list in schemathesis.toml; also part of `make test`)
	uv run pytest tests/e2e/test_api_contract.py -q

fmt: ## Format and autofix
	uv run ruff format src tests bench
	uv run ruff check --fix src tests bench

check: deps lint typecheck imports test ## Everything CI runs: install, lint and format check, mypy strict, import layers, tests

# Load tests (Locust) against the local cluster (started, and seeded if empty, when it is not up); reports in
# bench/results/loadtest-*/. The defaults are a short run this 2-core box sustains: constant_load at 100
# arrivals/s, spike_test at 0.04 x the design's rates (4 -> 40 -> 200 -> 4/s), 90 s each. FULL=1 runs the
# design's figures (constant_load 1000/s for 30 min; spike_test 100 -> 1000 -> 5000 -> 100/s over 20 min);
# RATE, DURATION and SCALE override either. Examples:
#   make loadtest                                  make loadtest SCENARIO=spike_test
#   make loadtest RATE=120 DURATION=60             make loadtest SCENARIO=spike_test SCALE=0.06 DURATION=75
#   make loadtest FULL=1                           make loadtest SCENARIO=spike_test FULL=1
#   make loadtest LOADTEST_ARGS="--auth-share 0.3 --stage-seconds 25,25,25"
SCENARIO ?= constant_load
RATE ?=
DURATION ?=
SCALE ?=
FULL ?=
LOADTEST_ARGS ?=

.PHONY: loadtest

loadtest: ## Locust load test + report in bench/results/ (SCENARIO=constant_load|spike_test RATE= DURATION= SCALE=; default a 90 s run at 100/s or spike x0.04; FULL=1: the design's 1000/s for 30 min, or spike x1 over 20 min)
	uv sync --group loadtest
	uv run --group loadtest python -m bench.loadtest --scenario $(SCENARIO) $(if $(filter 1 yes true,$(FULL)),--full) $(if $(RATE),--rate $(RATE)) $(if $(DURATION),--duration $(DURATION)) $(if $(SCALE),--scale $(SCALE)) $(LOADTEST_ARGS)

.PHONY: manifests

manifests: ## Regenerate deploy/k8s's generated files, then validate the compose file and every k8s manifest (no kubectl or docker needed)
	uv run python -m potluck_ops.k8s generate
	uv run pytest tests/infra/test_k8s_manifests.py tests/infra/test_compose.py -q
