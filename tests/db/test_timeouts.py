"""Bounded waits against real servers: a server that accepts and never answers fails the task within
30 s (connect timeout), a lock held by another session fails the load with a lock timeout that names
what it waited for and leaves the warehouse unchanged, and every session gets its timeouts (the
pipeline's, or the connection extra's, which win)."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from helpers import T0, create_items, dag_module, insert_items, items_pipeline, simple_rows, sync_window, warehouse_rows

from warehouse_sync import tasks
from warehouse_sync.config import Alerts
from warehouse_sync.db.connections import (
    SOURCE_CONN_ID,
    WAREHOUSE_CONN_ID,
    DatabaseUnavailable,
    LockTimeout,
    StatementTimeout,
    connect_uri,
    connection_uri,
    source_and_warehouse,
    sqlalchemy_url,
)
from warehouse_sync.model import RunStart
from warehouse_sync.run import Run

PASSWORD = "s3cret-never-shown"
HUNG_BOUND_SECONDS = 30  # the requirement: a hung server fails the task within 30 s


@pytest.fixture
def hung_server():
    """A TCP server that accepts every connection and never sends a byte (a hung PostgreSQL); yields
    its port and the list of connections it accepted."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def hung_uri(port: int, **extra: str) -> str:
    query = "&".join(f"{k}={quote(v)}" for k, v in extra.items())
    return f"postgresql://sync:{PASSWORD}@127.0.0.1:{port}/source" + (f"?{query}" if query else "")


def with_extra(uri: str, **extra: str) -> str:
    return uri + ("&" if "?" in uri else "?") + "&".join(f"{k}={quote(v)}" for k, v in extra.items())


def show(conn: psycopg.Connection, setting: str) -> str:
    (value,) = conn.execute(f"SHOW {setting}").fetchone()  # test-only SQL, setting names are literals here
    conn.rollback()
    return value


def test_a_source_that_accepts_and_never_answers_fails_the_extract_task_within_30_s(hung_server, monkeypatch):
    port, accepted = hung_server
    monkeypatch.setenv("AIRFLOW_CONN_SOURCE_POSTGRES", hung_uri(port))
    extract = dag_module(monkeypatch).build_dag(items_pipeline(), Alerts()).get_task("extract")
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as failed:  # not AirflowFailException: the task goes up for retry
        extract.python_callable(batch={"index": 0}, plan={}, run_id="hung")
    seconds = time.monotonic() - started
    assert accepted, "the server accepted the connection: the wait was for an answer, not a refusal"
    assert seconds < HUNG_BOUND_SECONDS, f"failed after {seconds:.1f} s"
    message = str(failed.value)
    assert message == (f"cannot connect to Airflow connection 'source_postgres' (host 127.0.0.1:{port}): "
                       "timeout after 10 s")
    assert PASSWORD not in message and PASSWORD not in repr(failed.value)
    assert not isinstance(failed.value, tasks.DETERMINISTIC_ERRORS)


def test_a_hung_warehouse_fails_after_the_connect_timeout_its_extra_sets_and_names_it(
        db_uris, hung_server, monkeypatch):
    port, accepted = hung_server
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_POSTGRES", hung_uri(port, connect_timeout="3"))
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as failed, tasks.fail_fast(), source_and_warehouse(items_pipeline()):
        pass
    seconds = time.monotonic() - started
    assert accepted and seconds < HUNG_BOUND_SECONDS
    assert str(failed.value) == (f"cannot connect to Airflow connection 'warehouse_postgres' (host 127.0.0.1:{port}): "
                                 "timeout after 3 s")
    assert PASSWORD not in str(failed.value)


def test_a_load_waiting_on_a_locked_target_fails_with_a_lock_timeout_and_the_same_load_succeeds_after(
        source, warehouse, db_uris, tmp_path):
    pipeline = items_pipeline(lock_timeout_seconds=2)
    create_items(source, simple_rows(5))
    sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, reconcile=False)
    later = T0 + timedelta(hours=1, minutes=5)
    insert_items(source, [("b", i, "1.0000", f"late {i}", True, None, None, 0.5, later) for i in range(3)])
    before = warehouse_rows(warehouse)
    window_end = T0 + timedelta(hours=2)

    with source_and_warehouse(pipeline) as (src, wh):
        run = Run(pipeline, src, wh, "locked")
        planned = tasks.plan(run, RunStart.scheduled(T0 + timedelta(hours=1), window_end, False))
        files = [tasks.extract(run, planned, b, root=tmp_path) for b in planned.batches]
        holder = connect_uri(db_uris[WAREHOUSE_CONN_ID], "holder")
        holder.execute("LOCK TABLE t_dst.items IN ACCESS EXCLUSIVE MODE")
        try:
            started = time.monotonic()
            with pytest.raises(LockTimeout) as failed, tasks.fail_fast():
                tasks.load(run, planned, files, open_path=Path)
            waited = time.monotonic() - started
        finally:
            holder.rollback()
            holder.close()
        message = str(failed.value)
        assert message.startswith("Airflow connection 'warehouse_postgres' (host ")
        assert "lock_timeout (2s) expired waiting for a lock another session holds" in message
        assert '"t_dst"."items"' in message  # the statement that waited names the table
        assert isinstance(failed.value, psycopg.errors.LockNotAvailable)
        assert not isinstance(failed.value, tasks.DETERMINISTIC_ERRORS)
        assert 2 <= waited < HUNG_BOUND_SECONDS
        assert warehouse_rows(warehouse) == before  # nothing partial committed

        loaded = tasks.load(run, planned, files, open_path=Path)
    assert loaded.merged == 3
    assert len(warehouse_rows(warehouse)) == len(before) + 3
    statuses = warehouse.execute("SELECT status FROM warehouse_sync.audit WHERE run_id = 'locked' AND step = 'load' "
                                 "ORDER BY 1").fetchall()
    warehouse.commit()
    assert sorted(s for (s,) in statuses) == ["failed", "ok"]


def test_source_sessions_get_the_pipelines_timeouts_and_a_connection_extra_wins(db_uris, monkeypatch):
    pipeline = items_pipeline(statement_timeout_seconds=1, lock_timeout_seconds=3)
    plain = connect_uri(db_uris[WAREHOUSE_CONN_ID])
    server_default = show(plain, "statement_timeout")
    plain.close()
    with source_and_warehouse(pipeline) as (src, wh):
        assert (show(src, "statement_timeout"), show(src, "lock_timeout")) == ("1s", "3s")
        assert (show(wh, "statement_timeout"), show(wh, "lock_timeout")) == (server_default, "3s")
        params = src.info.get_parameters()
        assert {k: params.get(k) for k in ("connect_timeout", "keepalives", "keepalives_idle",
                                           "keepalives_interval", "keepalives_count")} == \
            {"connect_timeout": "10", "keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10",
             "keepalives_count": "3"}
        with pytest.raises(StatementTimeout) as failed:
            src.execute("SELECT pg_sleep(10)")
        assert str(failed.value).startswith("Airflow connection 'source_postgres' (host ")
        assert "statement_timeout (1s) expired running, in: SELECT pg_sleep(10)" in str(failed.value)
        assert isinstance(failed.value, psycopg.errors.QueryCanceled)

    monkeypatch.setenv("AIRFLOW_CONN_SOURCE_POSTGRES",
                       with_extra(db_uris[SOURCE_CONN_ID], statement_timeout="2500", lock_timeout="4s",
                                  connect_timeout="5"))
    with source_and_warehouse(pipeline) as (src, wh):
        assert (show(src, "statement_timeout"), show(src, "lock_timeout")) == ("2500ms", "4s")
        assert src.info.get_parameters()["connect_timeout"] == "5"
        assert show(wh, "lock_timeout") == "3s"


def test_an_invalid_timeout_in_a_connection_extra_fails_at_once_naming_connection_and_setting(db_uris, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_POSTGRES",
                       with_extra(db_uris[WAREHOUSE_CONN_ID], lock_timeout="5 parsecs"))
    with pytest.raises(AirflowFailException,
                       match=r"Airflow connection 'warehouse_postgres' .*lock_timeout '5 parsecs' "
                             r"is not a duration"), tasks.fail_fast(), source_and_warehouse():
        pass


def test_the_great_expectations_url_carries_the_connect_parameters_and_the_lock_timeout(db_uris, monkeypatch):
    from sqlalchemy import create_engine, text

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_POSTGRES",
                       with_extra(db_uris[WAREHOUSE_CONN_ID], statement_timeout="1min"))
    engine = create_engine(sqlalchemy_url(connection_uri(WAREHOUSE_CONN_ID, lock_timeout_seconds=7)))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW lock_timeout")).scalar() == "7s"
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "1min"
            raw = conn.connection.dbapi_connection
            assert raw.info.get_parameters()["connect_timeout"] == "10"
            assert raw.info.get_parameters()["keepalives"] == "1"
    finally:
        engine.dispose()
