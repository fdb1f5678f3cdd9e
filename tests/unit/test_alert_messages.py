"""Alert texts: what a drift or a failed task tells people, with no channel configured (logged only)."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from warehouse_sync.alerts import alert_drift, alert_failure, send
from warehouse_sync.config import Alerts

START = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)
END = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
DRIFT = {"missing": 1, "extra": 0, "changed": 4, "repaired": 5, "sample_missing": [[3, 1]], "sample_extra": [],
         "sample_changed": {"[7, 1]": ["qty"]}}


class TaskInstance:
    def __init__(self, task_id: str, log_url: str | None):
        self.task_id, self.dag_id, self._log_url = task_id, "sync_lines", log_url

    @property
    def log_url(self) -> str:
        if self._log_url is None:
            raise RuntimeError("no API server URL configured")
        return self._log_url


def context(task_id: str, log_url: str | None = "http://airflow/log", **extra) -> dict:
    return {"ti": TaskInstance(task_id, log_url), "dag": SimpleNamespace(dag_id="sync_lines"),
            "run_id": "scheduled__2026-11-20T02:00:00+00:00", "data_interval_start": START,
            "data_interval_end": END, **extra}


def logged_alert(caplog) -> str:
    (record,) = [r for r in caplog.records if r.name == "warehouse_sync.alerts"]
    assert record.levelname == "WARNING"
    return record.getMessage()


def test_without_channels_an_alert_is_only_logged(caplog):
    with caplog.at_level("WARNING", logger="warehouse_sync.alerts"):
        assert send(Alerts(), "[warehouse-sync] t.x: drift", ["line one", "line two"]) == []
    assert logged_alert(caplog) == "ALERT [warehouse-sync] t.x: drift\nline one\nline two"


def test_a_drift_alert_names_table_dag_task_run_window_counts_and_sample_keys(caplog):
    with caplog.at_level("WARNING", logger="warehouse_sync.alerts"):
        assert alert_drift(context("reconcile"), Alerts(), "t_dst.lines", DRIFT) == []
    subject, *lines = logged_alert(caplog).splitlines()
    assert subject == "ALERT [warehouse-sync] t_dst.lines: drift found and repaired"
    assert lines == [
        "table t_dst.lines",
        "DAG sync_lines, task reconcile, run scheduled__2026-11-20T02:00:00+00:00",
        "data interval [2026-11-20T00:00:00+00:00, 2026-11-20T02:00:00+00:00)",
        "logs: http://airflow/log",
        "missing 1, extra (deleted at source) 0, changed 4; repaired 5 rows",
        "sample missing: [[3, 1]]",
        "sample extra: []",
        'sample changed (key: columns): {"[7, 1]": ["qty"]}',
    ]


def test_a_failure_alert_names_the_task_and_the_error(caplog):
    error = LookupError("table t_src.nope does not exist")
    with caplog.at_level("WARNING", logger="warehouse_sync.alerts"):
        assert alert_failure(context("plan", exception=error), Alerts(), "t_dst.nope") == []
    text = logged_alert(caplog)
    assert text.splitlines()[0] == "ALERT [warehouse-sync] t_dst.nope: task plan failed"
    assert "table t_dst.nope" in text and "task plan, run scheduled__" in text
    assert text.splitlines()[-1] == "error: LookupError: table t_src.nope does not exist"


def test_an_alert_without_a_log_url_or_interval_still_goes_out(caplog):
    bare = {"ti": TaskInstance("reconcile_table", None), "exception": RuntimeError("boom")}
    with caplog.at_level("WARNING", logger="warehouse_sync.alerts"):
        assert alert_failure(bare, Alerts(), "t_dst.lines") == []
    text = logged_alert(caplog)
    assert "DAG sync_lines, task reconcile_table, run ?" in text
    assert "logs:" not in text and "data interval" not in text


@pytest.mark.parametrize("missing", [{}, {"sample_changed": {}}])
def test_a_drift_summary_without_counts_reads_as_zero(caplog, missing):
    with caplog.at_level("WARNING", logger="warehouse_sync.alerts"):
        alert_drift(context("reconcile"), Alerts(), "t_dst.lines", missing)
    assert "missing 0, extra (deleted at source) 0, changed 0; repaired 0 rows" in logged_alert(caplog)
