# Roomsync: one command to run, one to test. Needs only Python 3.11+ and make; `make help` lists the targets.
#
# Everything runs in .venv, created on first use. The project is (re)installed there, with its test extras,
# whenever pyproject.toml is newer than the stamp file .venv/.roomsync-installed.

PYTHON ?= python3
PORT ?= 5000
export PORT

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.roomsync-installed
FLASK := $(BIN)/flask --app app

.DEFAULT_GOAL := help
.PHONY: help install run test bench migrate seed worker web sandbox clean distclean

help: ## list the targets
	@echo "Roomsync — make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /\1\t/' | \
		awk -F '\t' '{ printf "  make %-10s %s\n", $$1, $$2 }'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Roomsync needs Python 3.11 or newer; '$(PYTHON)' is older (set PYTHON=python3.12, say)."; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install Roomsync with its test tools (only when pyproject.toml changed)

migrate: $(STAMP) ## apply the database migrations (SQLite in instance/ unless DATABASE_URL is set)
	$(FLASK) db upgrade

seed: migrate ## add the demo venue, spaces, users and bookings (once: nothing happens if a venue exists)
	$(FLASK) seed-demo

run: seed ## migrate, seed the demo on first run, then start Redis, the worker and the web server on PORT
	$(BIN)/python scripts/run.py

test: $(STAMP) ## run the whole test suite, browser tests included (PYTEST_ARGS="-k demo" to narrow it)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) ## run the benchmarks: booking core, the sandbox, the Graph client, the initial sync, live sync, tablets, feeds (BENCH_ARGS / LIVE_BENCH_ARGS / KIOSK_BENCH_ARGS / FEEDS_BENCH_ARGS="--help" for options)
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/sandbox_bench.py
	$(BIN)/python bench/graph_bench.py
	$(BIN)/python bench/initial_sync_bench.py
	$(BIN)/python bench/live_sync_bench.py $(LIVE_BENCH_ARGS)
	$(BIN)/python bench/kiosk_bench.py $(KIOSK_BENCH_ARGS)
	$(BIN)/python bench/feeds_bench.py $(FEEDS_BENCH_ARGS)

worker: $(STAMP) ## run only the background worker (needs the Redis at REDIS_URL)
	$(BIN)/python worker.py

sandbox: $(STAMP) ## run only the Microsoft 365 sandbox tenant on https://127.0.0.1:5001/ (state in instance/)
	$(BIN)/python -m webapp.sandbox --port 5001 --instance instance

web: $(STAMP) ## run only the web server, Flask's debug server with reload (jobs need the Redis at REDIS_URL)
	$(FLASK) run --debug --host 127.0.0.1 --port $(PORT)

clean: ## delete caches, build leftovers, test artifacts and valkey's files; keeps .venv and the database
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
	rm -rf .pytest_cache build *.egg-info test-artifacts instance/valkey

distclean: clean ## also delete .venv and instance/ (the SQLite database and the secret key)
	rm -rf $(VENV) instance
