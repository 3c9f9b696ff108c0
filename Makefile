# proact: `make run` for a local demo, `make test` for the whole suite. Everything is installed by the
# project's own scripts: Python packages into .venv, Kafka and FerretDB into $(PROACT_CACHE).
SHELL := /bin/bash
PYTHON_BIN ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
export PROACT_CACHE ?= $(HOME)/.cache/proact
export PYTHON := $(CURDIR)/$(PY)

.PHONY: contract image install install-run lock infra-up infra-down infra-status run stop test test-unit lint bench load load-pinned chaos models traces clean-cache

# Python packages come from uv.lock (uv sync --locked fails when the lock no longer matches
# pyproject.toml); uv itself is pinned and installed into the cache by deploy/local/uv.sh.
export UV_PYTHON_DOWNLOADS := never
UV := $(PROACT_CACHE)/tools/uv-0.13.9/bin/uv
$(UV):
	@PYTHON_BIN=$(PYTHON_BIN) PROACT_UV_VERSION=0.13.9 bash deploy/local/uv.sh >/dev/null

# what running needs: the services, the trainer that makes the demo's models, the demo's mail catcher
$(VENV)/.installed-run: pyproject.toml uv.lock | $(UV)
	$(UV) sync -q --locked --inexact --python $(PYTHON_BIN) --extra trainer --extra demo
	@touch $@

# what the tests, linters and benchmarks add (an exact sync: nothing stray stays installed)
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync -q --locked --python $(PYTHON_BIN) --extra trainer --extra demo --extra bench --extra dev
	@touch $@ $(VENV)/.installed-run

# `make run` installs and starts only what running needs; `make test` adds the test rig
install-run: $(VENV)/.installed-run
	@bash deploy/local/system-deps.sh run
	@bash deploy/local/kafka.sh install
	@bash deploy/local/ferretdb.sh install

install: $(VENV)/.installed install-run
	@bash deploy/local/system-deps.sh test
	@bash deploy/local/kustomize.sh >/dev/null
	@bash deploy/local/compose-check.sh >/dev/null

# the lock, after a change to the dependencies in pyproject.toml
lock: | $(UV)
	$(UV) lock

infra-up: install-run
	@bash deploy/local/ferretdb.sh start
	@bash deploy/local/kafka.sh start

infra-down:
	@bash deploy/local/services.sh stop || true
	@bash deploy/local/mailcatcher.sh stop || true
	@bash deploy/local/kafka.sh stop
	@bash deploy/local/ferretdb.sh stop

infra-status:
	@bash deploy/local/kafka.sh status || true
	@bash deploy/local/ferretdb.sh status || true
	@bash deploy/local/services.sh status || true

run: install-run
	@bash deploy/local/run.sh

stop: infra-down

# the contract's JSON Schemas, AsyncAPI document and docs/events.md, generated from shared/contract
contract: $(VENV)/.installed
	$(PY) -m shared.contract reference

lint: $(VENV)/.installed
	$(UV) lock --check -q
	$(UV) pip check -q --python $(PY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m shared.contract reference --check

test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit -q

test: install infra-up lint
	$(PY) -m pytest tests -q

# performance figures for bench/README.md; each benchmark measures its own baseline in the same run
bench: $(VENV)/.installed infra-up
	PYTHONPATH=. $(PY) bench/models.py
	PYTHONPATH=. $(PY) bench/intent_live.py
	PYTHONPATH=. $(PY) bench/engine.py
	PYTHONPATH=. $(PY) bench/takeover.py
	PYTHONPATH=. $(PY) bench/rules.py
	PYTHONPATH=. $(PY) bench/decide.py
	PYTHONPATH=. $(PY) bench/state.py

# the decision call at 500 requests/s while the engine ingests 2,000 events/s, the whole stack running
load: $(VENV)/.installed infra-up models
	PYTHONPATH=. $(PY) bench/load.py

# the same with the storefront on a core of its own and everything else on the other, as separate pods
load-pinned: $(VENV)/.installed infra-up models
	PYTHONPATH=. $(PY) bench/load.py --pinned --events-per-s 1000 --seconds 40

# SIGKILL the engine, dispatcher, storefront, Kafka and FerretDB under steady traffic; count losses and duplicates
chaos: $(VENV)/.installed infra-up models
	PYTHONPATH=. $(PY) bench/chaos.py $(CHAOS_ARGS)

# default models from the shipped data, registered and promoted in $(PROACT_MODEL_DIR)
models: $(VENV)/.installed-run
	@bash deploy/local/models.sh

# the last journeys of `make run` as trace trees (spans the services wrote to the log folder)
traces: $(VENV)/.installed-run
	@PYTHONPATH=. $(PY) deploy/local/traces.py

# the two images the compose file and k8s/ name: proact (every service) and proact-trainer (the
# trainer extra besides), with Docker or Podman where one runs; neither does on the development
# machines, where tests/unit/test_deploy.py checks the Dockerfile and the compose file offline
image:
	@engine=""; for e in docker podman; do if command -v $$e >/dev/null && $$e info >/dev/null 2>&1; then engine=$$e; break; fi; done; \
	if [[ -z "$$engine" ]]; then echo "make image: no running Docker or Podman engine on this machine" >&2; exit 1; fi; \
	$$engine build -t proact:local . && $$engine build --build-arg EXTRAS=trainer -t proact-trainer:local .

clean-cache: infra-down
	rm -rf $(PROACT_CACHE)
