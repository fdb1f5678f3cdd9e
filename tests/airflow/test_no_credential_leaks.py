"""No credential reaches ``os.environ``, an XCom, a log line, an exception message or a written file.

Both Airflow connections carry a distinctive random password. The embedded PostgreSQL (and CI's
PostgreSQL 15) trusts local connections, so the password is accepted and ignored, and the real DAGs
run on those connections through ``dag.test()``: a snapshot run, a normal window with drift to
repair (plan, extract, load, reconcile with repair, validate with Great Expectations and Data Docs),
a run whose source table does not exist, a run whose source database does not exist (a connection
error), and the daily reconcile DAG. Then every place a credential could land is searched for it.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import secrets
import traceback
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import airflow.sdk.definitions.dag as sdk_dag
import pytest
import yaml
from helpers import T0, create_lines
from psycopg import sql

from devkit import airflow_local as runner
from devkit.embedded import ENV_VARS
from warehouse_sync import alerts
from warehouse_sync.db.connections import SOURCE_CONN_ID, WAREHOUSE_CONN_ID, connect_uri, sqlalchemy_url

pytestmark = pytest.mark.airflow
HARNESS_LINE = re.compile(r"^.*\bSending request\b.*\bmsg=MaskSecret\(.*$", re.MULTILINE)


def with_password(uri: str, password: str, database: str | None = None) -> str:
    """The Airflow connection URI ``uri`` with ``password`` (and optionally another database)."""
    parts = urlsplit(uri)
    user = parts.username or "postgres"
    host = parts.netloc.rpartition("@")[2]  # host[:port] as written (a socket directory stays quoted)
    path = f"/{database}" if database else parts.path
    return urlunsplit((parts.scheme, f"{quote(user, safe='')}:{quote(password, safe='')}@{host}", path,
                       parts.query, parts.fragment))


def files_under(root: Path) -> dict[str, str]:
    """Every file under ``root``, as text (bytes decoded leniently: SQLite and Parquet files too)."""
    return {f"file {path}": path.read_bytes().decode("utf-8", "replace")
            for path in sorted(root.rglob("*")) if path.is_file()}


def metadata_db_rows() -> dict[str, str]:
    """Every row of every table of the Airflow metadata database (xcom, task_instance, dag_run,
    rendered_task_instance_fields, log, ...), one text per table."""
    from airflow import settings
    from sqlalchemy import inspect, text

    tables = {}
    with settings.engine.connect() as conn:
        for name in inspect(conn).get_table_names():
            rows = conn.execute(text(f'SELECT * FROM "{name}"')).all()  # test-only SQL over catalog names
            tables[f"metadata table {name}"] = "\n".join(
                repr(tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in row)) for row in rows)
    return tables


def xcoms(dag_runs) -> list[tuple]:
    """``(dag_id, run_id, task_id, map_index, key, value)`` of every XCom the runs pushed."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, tuple_

    keys = [(r.dag_id, r.run_id) for r in dag_runs]
    with create_session() as session:
        return [tuple(row) for row in session.execute(
            select(XComModel.dag_id, XComModel.run_id, XComModel.task_id, XComModel.map_index, XComModel.key,
                   XComModel.value).where(tuple_(XComModel.dag_id, XComModel.run_id).in_(keys))).all()]


def bookkeeping_rows(warehouse) -> dict[str, str]:
    """Every row of every ``warehouse_sync`` table (audit details, dq_results, drift_history, ...)."""
    names = [r[0] for r in warehouse.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'warehouse_sync'").fetchall()]
    rows = {f"warehouse_sync.{name}": "\n".join(r[0] for r in warehouse.execute(
        sql.SQL("SELECT t::text FROM warehouse_sync.{} AS t").format(sql.Identifier(name))).fetchall())
        for name in names}
    warehouse.commit()
    return rows


def occurrences(places: dict[str, str], secret: str) -> list[str]:
    """``place: …context…`` for each place whose text holds ``secret``."""
    found = []
    for place, text in places.items():
        at = text.find(secret)
        if at >= 0:
            found.append(f"{place}: …{text[max(0, at - 160):at + len(secret) + 40]!r}…")
    return found


@pytest.fixture
def own_databases(db_uris):
    """Connection URIs (no password) of this test's own source and warehouse databases: the test
    databases' names plus ``_leaks``, on the same server, created empty and dropped afterwards (the
    ``db`` layer's fixtures drop the ``t_src`` and ``warehouse_sync`` schemas of the shared test
    databases, so a ``tests/db`` run beside this one cannot pull the tables from under its DAG runs)."""
    uris = {}
    for conn_id, uri in db_uris.items():
        parts = urlsplit(uri)
        uris[conn_id] = urlunsplit(parts._replace(path=f"{parts.path}_leaks"))
    with connect_uri(db_uris[WAREHOUSE_CONN_ID], "setup") as admin:
        admin.autocommit = True
        for uri in uris.values():
            name = sql.Identifier(urlsplit(uri).path.lstrip("/"))
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
    yield uris
    with connect_uri(db_uris[WAREHOUSE_CONN_ID], "teardown") as admin:
        admin.autocommit = True
        for uri in uris.values():
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(urlsplit(uri).path.lstrip("/"))))


@pytest.fixture
def own_source(own_databases):
    conn = connect_uri(own_databases[SOURCE_CONN_ID], SOURCE_CONN_ID)
    yield conn
    conn.close()


@pytest.fixture
def own_warehouse(own_databases):
    conn = connect_uri(own_databases[WAREHOUSE_CONN_ID], WAREHOUSE_CONN_ID)
    yield conn
    conn.close()


def test_no_credential_reaches_environ_xcoms_logs_exceptions_or_data_docs(
        airflow_db, own_databases, own_source, own_warehouse, tmp_path, monkeypatch, caplog, capfd):
    db_uris, source, warehouse = own_databases, own_source, own_warehouse
    # letters, digits and "-" only: URL quoting leaves it as it is, so one search finds every form
    password = f"Pw-5ecr3t-{secrets.token_hex(8)}"
    conn_env = {ENV_VARS[conn_id]: with_password(db_uris[conn_id], password)
                for conn_id in (SOURCE_CONN_ID, WAREHOUSE_CONN_ID)}
    for var, uri in conn_env.items():
        monkeypatch.setenv(var, uri)
    source.execute("CREATE SCHEMA t_src")
    create_lines(source, orders=50)
    config = tmp_path / "pipelines.yaml"
    config.write_text(yaml.safe_dump({
        "defaults": {"settle_timeout_seconds": 0, "repair_max_fraction": 0.5},
        "pipelines": [
            {"name": "lines", "source": "t_src.lines", "primary_key": ["order_id", "line"], "cursor": "updated_at",
             "target": "t_dst.lines", "batch_size": 30, "snapshot_batch_size": 80, "page_size": 20},
            {"name": "nope", "source": "t_src.nope", "primary_key": ["id"], "cursor": "updated_at",
             "target": "t_dst.nope"},
        ]}))
    # dag.test() re-parses the DAG folder, so the config must stay in the environment during the runs
    monkeypatch.setenv("WAREHOUSE_SYNC_CONFIG", str(config))
    monkeypatch.setenv("WAREHOUSE_SYNC_STAGING_ROOT", f"file://{tmp_path / 'staging'}")
    monkeypatch.setenv("WAREHOUSE_SYNC_REPORTS_ROOT", f"file://{tmp_path / 'reports'}")

    # Log lines. dag.test() runs every task in this process (InProcessTestSupervisor) and writes no
    # task log file: there is no supervisor, so nothing lands under $AIRFLOW_HOME/logs (searched
    # below anyway, with every other file of the Airflow home). Task logs go to the console only:
    # stdlib records (the warehouse_sync modules, psycopg, GX, the providers) through the root
    # logger, which caplog sees raw, before any secrets masker (Airflow masks a connection's
    # password only in a worker's log processing; a credential must not reach a record at all),
    # and Airflow's own structlog loggers (task runner, supervisor, DagRun: the task's exceptions)
    # straight to sys.stdout, which capfd sees. The session logs at WARNING: both go to DEBUG here,
    # so every line a deployment could be configured to write is searched. (Airflow is imported at
    # the top of this module: its first import configures logging, which replaces the root
    # handlers, caplog's among them.)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="airflow")
    for name in ("airflow._shared.logging.structlog", "airflow.sdk._shared.logging.structlog"):
        monkeypatch.setitem(importlib.import_module(name).PER_LOGGER_LEVELS, "", logging.DEBUG)

    # Exception messages: each task's error as the task runner returns it (what Airflow logs and
    # hands to on_failure_callback), with its whole chain; os.environ after every task (a value set
    # and removed inside a task is caught by the putenv recorder); every alert's text.
    errors: list[str] = []
    environ_after_tasks: list[str] = []
    set_in_environ: list[str] = []
    alert_texts: list[str] = []
    real_run_task, real_putenv, real_send = sdk_dag._run_task, os.putenv, alerts.send

    def run_task(*, ti, task, **kwargs):
        result = real_run_task(ti=ti, task=task, **kwargs)
        if result is not None and result.error is not None:
            errors.append(f"{ti.dag_id}.{ti.task_id}: {result.error!s} | {result.error!r}\n"
                          + "".join(traceback.format_exception(result.error)))
        environ_after_tasks.append(f"after {ti.dag_id}.{ti.task_id}[{ti.map_index}]: " + repr(
            {k: v for k, v in os.environ.items() if k not in conn_env}))
        return result

    def putenv(key, value):
        decoded = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in (key, value)]
        if decoded[0] not in conn_env:
            set_in_environ.append("=".join(decoded))
        real_putenv(key, value)

    def send(alert_config, subject, lines, context=None):
        alert_texts.append(subject + "\n" + "\n".join(lines))
        return real_send(alert_config, subject, lines, context)

    monkeypatch.setattr(sdk_dag, "_run_task", run_task)
    monkeypatch.setattr(os, "putenv", putenv)
    monkeypatch.setattr(alerts, "send", send)

    dags = runner.load_dags()
    snapshot = runner.run_window(dags["sync_lines"], T0 + timedelta(hours=2), {"full_snapshot": True})
    source.execute("UPDATE t_src.lines SET qty = qty + 1, updated_at = %s WHERE order_id <= 10",
                   (T0 + timedelta(hours=2, minutes=10),))
    source.commit()
    warehouse.execute("UPDATE t_dst.lines SET qty = 0 WHERE order_id = 30")  # drift: reconcile repairs it
    warehouse.commit()
    window = runner.run_window(dags["sync_lines"], T0 + timedelta(hours=4))
    daily = runner.run_window(dags["reconcile_lines"], T0 + timedelta(hours=6))
    missing_table = runner.run_window(dags["sync_nope"], T0 + timedelta(hours=2))
    # a connection error: the server says why it refused (no such database), with the password in the conninfo
    monkeypatch.setenv(ENV_VARS[SOURCE_CONN_ID], with_password(db_uris[SOURCE_CONN_ID], password,
                                                                 f"ws_missing_{secrets.token_hex(4)}"))
    unreachable = runner.run_window(dags["sync_lines"], T0 + timedelta(hours=6))
    monkeypatch.setenv(ENV_VARS[SOURCE_CONN_ID], conn_env[ENV_VARS[SOURCE_CONN_ID]])
    # Great Expectations refusing its connection: the validate task's URL (password included) reaches
    # GX, whose connection error must not repeat it.
    from warehouse_sync.quality.validate import run_expectations

    gx_url = sqlalchemy_url(with_password(db_uris[WAREHOUSE_CONN_ID], password, f"ws_missing_{secrets.token_hex(4)}"))
    with pytest.raises(Exception) as gx_refused:  # noqa: PT011 (whatever GX raises, its text is searched)
        run_expectations(gx_url, "SELECT 1 AS k", "leak_probe", [], ["k"], tmp_path / "gx_probe_docs")
    errors.append("GX: " + "".join(traceback.format_exception(gx_refused.value)))

    # What ran is what the test claims to cover.
    runs = [snapshot, window, daily, missing_table, unreachable]
    for dag_run in (snapshot, window, daily):
        assert str(dag_run.state) == "success", runner.task_states(dag_run)
    for dag_run in (missing_table, unreachable):
        assert str(dag_run.state) == "failed", runner.task_states(dag_run)
    for dag_run in (snapshot, window):
        states = runner.task_states(dag_run)
        assert sum(k.startswith("extract[") for k in states) >= 2, states
        assert {"plan", "load", "reconcile", "validate"} <= set(states), states
    assert any("TableNotFound" in e for e in errors) and any("cannot connect" in e for e in errors), errors
    assert any("drift found and repaired" in a for a in alert_texts), alert_texts
    assert sum("task plan failed" in a for a in alert_texts) == 2, alert_texts
    pushed = xcoms(runs)
    assert {"plan", "return_value"} <= {x[4] for x in pushed}, pushed
    docs = tmp_path / "reports" / "data_docs"
    assert list(docs.rglob("*.html")), "validate wrote no Data Docs"
    airflow_home = Path(os.environ["AIRFLOW_HOME"])
    log_files = ([p for p in (airflow_home / "logs").rglob("*") if p.is_file()]
                 if (airflow_home / "logs").exists() else [])
    # dag.test()'s in-process comms (InProcessSupervisorComms.send) log every request at DEBUG, so
    # also the MaskSecret request by which Airflow registers the connection's password with its
    # secrets masker. That line exists only under dag.test(): a worker's task runner does not log
    # its requests, and its supervisor logs that one with the body omitted. Nothing else is excused.
    console = capfd.readouterr()
    console_out, console_err = (HARNESS_LINE.sub("(dag.test comms: MaskSecret request)", text)
                                for text in (console.out, console.err))
    logged = {r.name for r in caplog.records if r.levelno == logging.INFO and r.name.startswith("warehouse_sync.")}
    assert {"warehouse_sync.sync.mode", "warehouse_sync.sync.extract", "warehouse_sync.sync.load",
            "warehouse_sync.quality.validate"} <= logged, logged  # the capture saw the tasks' own lines
    assert "[task]" in console.out, "no line of Airflow's task runner captured"

    places = {
        "log records (caplog)": caplog.text + "\n".join(str(r.__dict__) for r in caplog.records),
        "console stdout": console_out, "console stderr": console_err,
        "exceptions": "\n".join(errors), "alerts": "\n".join(alert_texts),
        "xcoms": "\n".join(map(repr, pushed)),
        "os.environ after the runs": repr({k: v for k, v in os.environ.items() if k not in conn_env}),
        "os.environ after each task": "\n".join(environ_after_tasks),
        "values set in os.environ": "\n".join(set_in_environ),
        **metadata_db_rows(), **bookkeeping_rows(warehouse),
        **files_under(tmp_path), **files_under(airflow_home),
    }
    leaks = occurrences(places, password)
    assert not leaks, f"the password reached {len(leaks)} place(s):\n" + "\n".join(leaks)
    print(f"searched {len(places)} places, {len(log_files)} files under {airflow_home / 'logs'}, "
          f"{len(caplog.records)} log records, {len(pushed)} XComs")
