"""Shared set-up: a local Airflow home for the session, and lazily started database fixtures.

Layers (each a folder; ``make test-<layer>`` runs one):

* ``unit/``    no database, no Airflow run;
* ``db/``      a real PostgreSQL, no Airflow run;
* ``airflow/`` the real DAGs through the real Airflow (``dag.test()``);
* ``browser/`` the data-quality page in the real API server and headless Chromium;
* ``dags/``    DAG-file and deployment-file integrity.

Importing this file connects to nothing and starts nothing: the database fixtures below start or
reach PostgreSQL only when a test requests them.

Databases: the tests use their own ``ws_test_source`` / ``ws_test_warehouse`` databases and never
touch another. If ``AIRFLOW_CONN_SOURCE_POSTGRES`` and ``AIRFLOW_CONN_WAREHOUSE_POSTGRES`` are set,
those databases are created (and marked) on the servers they name (``.ci/run`` points them at the
machine's PostgreSQL 15), and a database of that name the tests did not create is refused
(``devkit.embedded.own_database``; ``WAREHOUSE_SYNC_USE_GIVEN_DATABASES=1`` opts into the given
databases); otherwise they are on the embedded PostgreSQL, beside the demo's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

# Airflow reads its configuration at first import: give the test session its own home first.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="ws-airflow-")
os.environ.setdefault("WAREHOUSE_SYNC_RETRY_DELAY_SECONDS", "1")
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
# OpenLineage events of every dag.test() run go to a file of the session (tests/airflow/test_lineage.py reads it).
OPENLINEAGE_EVENTS = Path(os.environ["AIRFLOW_HOME"]) / "openlineage.jsonl"
os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"] = (
    '{"type": "file", "log_file_path": "%s", "append": true}' % OPENLINEAGE_EVENTS)
# Airflow's metrics (ours among them) go to StatsD on a loopback port of the session; tests/airflow/test_metrics.py
# listens there. Nothing listens otherwise: UDP datagrams to a closed port are dropped.
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as _probe:
    _probe.bind(("127.0.0.1", 0))
    STATSD_PORT = _probe.getsockname()[1]
os.environ.update({"AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                   "AIRFLOW__METRICS__STATSD_PORT": str(STATSD_PORT), "AIRFLOW__METRICS__STATSD_PREFIX": "airflow"})

from devkit.airflow_local import airflow_environment, migrate_metadata_db  # noqa: E402
from devkit.embedded import ENV_VARS, ensure_connections  # noqa: E402
from warehouse_sync.db.connections import SOURCE_CONN_ID, WAREHOUSE_CONN_ID, connect_uri  # noqa: E402

airflow_environment(Path(os.environ["AIRFLOW_HOME"]))

TEST_DATABASES = {SOURCE_CONN_ID: "ws_test_source", WAREHOUSE_CONN_ID: "ws_test_warehouse"}


@pytest.fixture(scope="session")
def db_uris() -> dict[str, str]:
    """Connection URIs by Airflow connection id (also exported as AIRFLOW_CONN_* for Airflow)."""
    env = ensure_connections(TEST_DATABASES, purpose="tests")
    return {conn_id: env[var] for conn_id, var in ENV_VARS.items()}


@pytest.fixture
def source(db_uris):
    """A source connection on a clean ``t_src`` schema."""
    conn = connect_uri(db_uris[SOURCE_CONN_ID], SOURCE_CONN_ID)
    conn.execute("DROP SCHEMA IF EXISTS t_src CASCADE; CREATE SCHEMA t_src")
    conn.commit()
    yield conn
    conn.rollback()
    conn.close()


@pytest.fixture
def warehouse(db_uris):
    """A warehouse connection with no ``t_dst`` schema and no bookkeeping yet."""
    conn = connect_uri(db_uris[WAREHOUSE_CONN_ID], WAREHOUSE_CONN_ID)
    conn.execute("DROP SCHEMA IF EXISTS t_dst CASCADE; DROP SCHEMA IF EXISTS warehouse_sync CASCADE")
    conn.commit()
    yield conn
    conn.rollback()
    conn.close()


@pytest.fixture
def second_source(db_uris):
    """Another, independent source session (a concurrent writer)."""
    conn = connect_uri(db_uris[SOURCE_CONN_ID], SOURCE_CONN_ID)
    yield conn
    conn.rollback()
    conn.close()


@pytest.fixture(scope="session")
def airflow_db(db_uris):
    """A migrated Airflow metadata database (SQLite in the session's AIRFLOW_HOME)."""
    try:
        migrate_metadata_db()
    except subprocess.CalledProcessError as exc:  # show why, not just the exit code
        raise RuntimeError(f"airflow db migrate failed:\n{exc.stdout}\n{exc.stderr}") from exc
    return os.environ["AIRFLOW_HOME"]
