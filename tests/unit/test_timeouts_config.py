"""Timeouts without a database: the config fields and their one place of defaults, which value wins
(connection extra over pipeline over default), the connect parameters every connection gets, and
errors that name the connection and host, never the password, and keep the task's retries."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from warehouse_sync.config import ConfigError, Pipeline, load_config
from warehouse_sync.config.pipeline import ExecutionTimeouts
from warehouse_sync.db.connections import (
    CONNECT_DEFAULTS,
    DatabaseUnavailable,
    LockTimeout,
    StatementTimeout,
    connect,
    connect_params,
    connect_uri,
    connection_uri,
    session_timeouts,
)

PASSWORD = "s3cret-never-shown"
TASKS = ("plan", "extract", "load", "reconcile", "validate", "reconcile_table")


def pipeline(**settings) -> Pipeline:
    return Pipeline(name="orders", source="tpch.orders", target="dw.orders", primary_key="o_orderkey",
                    cursor="updated_at", **settings)


def write(tmp_path, doc) -> str:
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def entry(**settings) -> dict:
    return {"name": "orders", "source": "tpch.orders", "target": "dw.orders", "primary_key": ["o_orderkey"],
            "cursor": "updated_at", **settings}


def test_every_task_has_an_execution_timeout_by_default_and_a_pipeline_overrides_only_the_ones_it_names():
    defaults = pipeline()
    assert defaults.task_timeout_minutes.minutes() == {
        "plan": 10, "extract": 30, "load": 60, "reconcile": 60, "validate": 30, "reconcile_table": 180, "health": 10,
        "clean_staging": 30}
    assert [defaults.execution_timeout(t) for t in TASKS] == [timedelta(minutes=m) for m in (10, 30, 60, 60, 30, 180)]
    assert defaults.task_timeout_minutes.longest == timedelta(hours=3)
    changed = pipeline(task_timeout_minutes={"extract": 45, "validate": 5})
    assert changed.execution_timeout("extract") == timedelta(minutes=45)
    assert changed.execution_timeout("validate") == timedelta(minutes=5)
    assert changed.execution_timeout("load") == timedelta(minutes=60)
    assert changed.model_dump()["task_timeout_minutes"]["validate"] == 5  # the file's key, back out
    hash(changed)  # still a frozen, hashable value
    with pytest.raises(KeyError, match="known: plan, extract, load, reconcile, validate, reconcile_table"):
        defaults.execution_timeout("clean_up")


def test_session_timeout_defaults_live_in_the_pipeline_model():
    defaults = pipeline()
    assert (defaults.statement_timeout_seconds, defaults.lock_timeout_seconds) == (300, 30)
    assert Pipeline.model_fields["task_timeout_minutes"].default == ExecutionTimeouts()


def test_an_unknown_task_or_a_bad_value_in_the_file_names_pipeline_field_and_the_allowed_tasks(tmp_path):
    path = write(tmp_path, {"pipelines": [entry(task_timeout_minutes={"extrct": 45, "load": 0},
                                                lock_timeout_seconds=-1)]})
    with pytest.raises(ConfigError) as failed:
        load_config(path)
    message = str(failed.value)
    assert ("pipeline 'orders', field 'task_timeout_minutes.extrct': unknown field "
            "(allowed: clean_staging, extract, health, load, plan, reconcile, reconcile_table, validate)") in message
    assert "pipeline 'orders', field 'task_timeout_minutes.load': Input should be greater than or equal to 1" in message
    assert "pipeline 'orders', field 'lock_timeout_seconds': Input should be greater than or equal to 0" in message


def test_the_defaults_section_sets_timeouts_for_every_pipeline_and_an_entry_wins(tmp_path):
    doc = {"defaults": {"lock_timeout_seconds": 10, "task_timeout_minutes": {"load": 90}},
           "pipelines": [entry(), entry(name="lines", target="dw.lines", lock_timeout_seconds=5,
                                                   task_timeout_minutes={"extract": 45})]}
    orders, lines = load_config(write(tmp_path, doc)).pipelines
    assert (orders.lock_timeout_seconds, lines.lock_timeout_seconds) == (10, 5)
    assert orders.execution_timeout("load") == timedelta(minutes=90)
    # an entry's own mapping replaces the defaults section's, as every field does
    assert (lines.execution_timeout("extract"), lines.execution_timeout("load")) == (timedelta(minutes=45),
                                                                                     timedelta(minutes=60))


def test_plan_must_be_allowed_longer_than_its_settle_wait(tmp_path):
    path = write(tmp_path, {"pipelines": [entry(settle_timeout_seconds=900)]})
    with pytest.raises(ConfigError, match=r"pipeline 'orders': task_timeout_minutes.plan \(10 min\) must be "
                                          r"longer than settle_timeout_seconds \(900 s\)"):
        load_config(path)
    assert pipeline(settle_timeout_seconds=900, task_timeout_minutes={"plan": 20}).execution_timeout("plan") == \
        timedelta(minutes=20)


def test_the_connection_extra_wins_over_the_pipeline_which_wins_over_the_server():
    assert session_timeouts({}) == {}
    assert session_timeouts({}, 300, 30) == {"statement_timeout": "300s", "lock_timeout": "30s"}
    assert session_timeouts({"lock_timeout": 4000}, 300, 30) == {"statement_timeout": "300s", "lock_timeout": "4000"}
    assert session_timeouts({"statement_timeout": "2min", "lock_timeout": ""}, None, 30) == \
        {"statement_timeout": "2min", "lock_timeout": "30s"}
    assert session_timeouts({}, 0, 0) == {"statement_timeout": "0s", "lock_timeout": "0s"}  # 0: none, as in PostgreSQL


def test_every_connection_gets_a_connect_timeout_and_keepalives_unless_its_extra_sets_them():
    assert CONNECT_DEFAULTS == {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30,
                                "keepalives_interval": 10, "keepalives_count": 3}
    assert connect_params({}) == CONNECT_DEFAULTS
    params = connect_params({"connect_timeout": "3", "sslmode": "require", "statement_timeout": "5s",
                             "lock_timeout": 1})
    assert params == {**CONNECT_DEFAULTS, "connect_timeout": "3", "sslmode": "require"}  # no session setting for libpq


def test_the_connection_string_carries_connect_parameters_and_timeouts_as_options(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WS_UNIT", f"postgresql://sync:{PASSWORD}@db.example:6543/dw?keepalives_idle=5"
                                               "&statement_timeout=2min&options=-c%20search_path%3Ddw")
    params = conninfo_to_dict(connection_uri("ws_unit", lock_timeout_seconds=30))
    assert params == {"host": "db.example", "port": "6543", "user": "sync", "password": PASSWORD, "dbname": "dw",
                      "connect_timeout": "10", "keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "10",
                      "keepalives_count": "3",
                      "options": "-c search_path=dw -c statement_timeout=2min -c lock_timeout=30s"}
    monkeypatch.setenv("AIRFLOW_CONN_WS_UNIT", "postgresql://sync@db.example/dw?lock_timeout=5%20min")
    assert conninfo_to_dict(connection_uri("ws_unit"))["options"] == r"-c lock_timeout=5\ min"


def refused_port() -> int:
    with socket.socket() as probe:  # bound, then closed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_names_connection_id_and_host_never_the_password(monkeypatch):
    port = refused_port()
    monkeypatch.setenv("AIRFLOW_CONN_WS_REFUSED", f"postgresql://sync:{PASSWORD}@127.0.0.1:{port}/dw")
    with pytest.raises(DatabaseUnavailable) as failed:
        connect("ws_refused", statement_timeout_seconds=300, lock_timeout_seconds=30)
    message = str(failed.value)
    assert message.startswith(f"cannot connect to Airflow connection 'ws_refused' (host 127.0.0.1:{port}): ")
    assert "refused" in message.lower()
    assert PASSWORD not in message and PASSWORD not in repr(failed.value) and failed.value.__cause__ is None

    with pytest.raises(DatabaseUnavailable) as failed:
        connect_uri(f"postgresql://sync:{PASSWORD}@127.0.0.1:{port}/dw", "source_postgres")
    assert str(failed.value).startswith(f"cannot connect to source_postgres at 127.0.0.1:{port}/dw: ")
    assert PASSWORD not in str(failed.value)


def test_an_undefined_connection_is_named_with_how_to_define_it():
    with pytest.raises(DatabaseUnavailable,
                       match="Airflow connection 'ws_nowhere' is not defined; .*AIRFLOW_CONN_WS_NOWHERE"):
        connect("ws_nowhere")


@pytest.mark.parametrize("error", [DatabaseUnavailable("cannot connect"), LockTimeout("lock"),
                                   StatementTimeout("slow")])
def test_timeouts_and_unreachable_servers_keep_the_task_s_retries(error):
    from warehouse_sync import tasks

    assert not isinstance(error, tasks.DETERMINISTIC_ERRORS)
    with pytest.raises(type(error)) as raised, tasks.fail_fast():
        raise error
    assert raised.value is error  # not turned into AirflowFailException
