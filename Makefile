# proact: `make run` for a local demo, `make test` for the whole suite. Everything is installed by the
# project's own scripts: Python packages into .venv, Kafka and FerretDB into $(PROACT_CACHE).
SHELL := /bin/bash
PYTHON_BIN ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
export PROACT_CACHE ?= $(HOME)/.cache/proact
export PYTHON := $(CURDIR)/$(PY)

.PHONY: contract install infra-up infra-down infra-status run stop test test-unit lint bench load chaos models traces clean-cache

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed
	@bash deploy/local/system-deps.sh
	@bash deploy/local/kafka.sh install
	@bash deploy/local/ferretdb.sh install
	@bash deploy/local/kustomize.sh >/dev/null

infra-up: install
	@bash deploy/local/ferretdb.sh start
	@bash deploy/local/kafka.sh start

infra-down:
	@bash deploy/local/services.sh stop || true
	@bash deploy/local/kafka.sh stop
	@bash deploy/local/ferretdb.sh stop

infra-status:
	@bash deploy/local/kafka.sh status || true
	@bash deploy/local/ferretdb.sh status || true
	@bash deploy/local/services.sh status || true

run: install
	@bash deploy/local/run.sh

stop: infra-down

# the contract's JSON Schemas, AsyncAPI document and docs/events.md, generated from shared/contract
contract: $(VENV)/.installed
	$(PY) -m shared.contract reference

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m shared.contract reference --check

test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit -q

test: infra-up lint
	$(PY) -m pytest tests -q

# performance figures for bench/README.md; each benchmark measures its own baseline in the same run
bench: infra-up
	PYTHONPATH=. $(PY) bench/models.py
	PYTHONPATH=. $(PY) bench/engine.py
	PYTHONPATH=. $(PY) bench/rules.py
	PYTHONPATH=. $(PY) bench/decide.py
	PYTHONPATH=. $(PY) bench/state.py

# the decision call at 500 requests/s while the engine ingests 2,000 events/s, the whole stack running
load: infra-up models
	PYTHONPATH=. $(PY) bench/load.py

# SIGKILL the engine, dispatcher, storefront, Kafka and FerretDB under steady traffic; count losses and duplicates
chaos: infra-up models
	PYTHONPATH=. $(PY) bench/chaos.py $(CHAOS_ARGS)

# default models from the shipped data, registered and promoted in $(PROACT_MODEL_DIR)
models: $(VENV)/.installed
	@bash deploy/local/models.sh

# the last journeys of `make run` as trace trees (spans the services wrote to the log folder)
traces: $(VENV)/.installed
	@PYTHONPATH=. $(PY) deploy/local/traces.py

clean-cache: infra-down
	rm -rf $(PROACT_CACHE)
