# fieldsync — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export FIELDSYNC_DATA_DIR ?= $(CURDIR)/var
FIELDSYNC_HOST ?= 127.0.0.1
FIELDSYNC_PORT ?= 5000
FIELDSYNC_TEST_POSTGRES_URL ?=
PG_URL := $(if $(FIELDSYNC_TEST_POSTGRES_URL),$(FIELDSYNC_TEST_POSTGRES_URL),postgresql+psycopg://postgres@127.0.0.1:5432/test)
PYTEST_ARGS ?=

.PHONY: help run test test-sqlite test-postgres lint format bench openapi migrate demo clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

migrate: $(STAMP) ## Bring the database (FIELDSYNC_DATABASE_URL, default SQLite under ./var) to the latest schema
	$(BIN)/flask --app fieldsync migrate

demo: migrate ## Load the demo streets, roster and catalogue (idempotent) and print the accounts
	$(BIN)/flask --app fieldsync load-demo

run: demo ## Set everything up and serve the API on $(FIELDSYNC_HOST):$(FIELDSYNC_PORT)
	@echo "fieldsync serving on http://$(FIELDSYNC_HOST):$(FIELDSYNC_PORT)/api/v1/health  (API docs: /api/v1/openapi.json)"
	$(BIN)/gunicorn --bind $(FIELDSYNC_HOST):$(FIELDSYNC_PORT) --workers 2 --access-logfile - -c python:fieldsync.serving 'fieldsync:create_app()'

test: $(STAMP) ## Run the whole suite on SQLite, then on PostgreSQL when it answers (required with FIELDSYNC_REQUIRE_POSTGRES=1)
	$(MAKE) --no-print-directory test-sqlite
	@if $(BIN)/python -m fieldsync.tools.pgcheck "$(PG_URL)"; then \
		$(MAKE) --no-print-directory test-postgres; \
	elif [ "$$FIELDSYNC_REQUIRE_POSTGRES" = 1 ]; then \
		echo "PostgreSQL is required (FIELDSYNC_REQUIRE_POSTGRES=1) but does not answer at $(PG_URL)"; exit 1; \
	else \
		echo "SKIPPED: PostgreSQL does not answer at $(PG_URL); the suite ran on SQLite only"; \
	fi

test-sqlite: $(STAMP)
	FIELDSYNC_TEST_DB=sqlite $(BIN)/pytest $(PYTEST_ARGS)

test-postgres: $(STAMP)
	FIELDSYNC_TEST_DB=postgresql FIELDSYNC_TEST_POSTGRES_URL="$(PG_URL)" $(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, format check, import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP) ## Format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

openapi: $(STAMP) ## Regenerate openapi.yaml from the app
	$(BIN)/flask --app fieldsync openapi write --format=yaml openapi.yaml

bench: $(STAMP) ## Benchmarks on SQLite and PostgreSQL (prints a table)
	$(BIN)/python -m bench

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) var .pytest_cache
