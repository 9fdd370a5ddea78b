# Developer and CI entry points. `make` or `make help` lists the targets.
SHELL := bash
.DEFAULT_GOAL := help

PYTEST_ARGS ?=

.PHONY: help deps test

help: ## List the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_.-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

deps: ## Install system packages (apt, as root) and the locked Python env (uv sync --frozen)
	bash scripts/install-deps.sh

test: deps ## Run the test suite against real PostgreSQL and Redis (extra args: PYTEST_ARGS=...)
	uv run pytest $(PYTEST_ARGS)
