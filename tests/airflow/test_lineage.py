"""OpenLineage: a sync run under ``dag.test()`` emits the source and target tables as datasets in
OpenLineage's PostgreSQL naming, with their schema, row counts and the data-quality outcome, through
the real OpenLineage provider and its file transport (``tests/conftest.py`` configures it)."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from helpers import T0, create_lines

from devkit import airflow_local as runner

pytestmark = pytest.mark.airflow
# The session's file transport (tests/conftest.py sets it before Airflow starts).
OPENLINEAGE_EVENTS = Path(json.loads(os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"])["log_file_path"])


def _events(job: str, event_type: str, timeout: float = 30) -> list[dict]:
    """The events of one task (``<dag_id>.<task_id>``) and type, waiting for the listener's writer."""
    deadline = time.monotonic() + timeout
    while True:
        lines = OPENLINEAGE_EVENTS.read_text().splitlines() if OPENLINEAGE_EVENTS.exists() else []
        found = [e for e in map(json.loads, lines) if e["job"]["name"] == job and e["eventType"] == event_type]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_a_sync_run_emits_its_source_and_target_with_schema_row_counts_and_data_quality(
        airflow_db, source, warehouse, tmp_path, monkeypatch):
    create_lines(source, orders=20)
    config = tmp_path / "pipelines.yaml"
    config.write_text(yaml.safe_dump({"pipelines": [{
        "name": "lines", "source": "t_src.lines", "primary_key": ["order_id", "line"], "cursor": "updated_at",
        "target": "t_dst.lines", "settle_timeout_seconds": 0,
        "expectations": [{"expect": "column_values_to_be_between", "column": "qty", "min_value": 0,
                          "label": "quantity is not negative"}]}]}))
    monkeypatch.setenv("WAREHOUSE_SYNC_CONFIG", str(config))
    monkeypatch.setenv("WAREHOUSE_SYNC_STAGING_ROOT", f"file://{tmp_path / 'staging'}")
    OPENLINEAGE_EVENTS.unlink(missing_ok=True)
    run = runner.run_window(runner.load_dags()["sync_lines"], T0 + timedelta(hours=2), {"full_snapshot": True})
    assert str(run.state) == "success"

    (load,) = _events("sync_lines.load", "COMPLETE")
    (read,), (written,) = load["inputs"], load["outputs"]
    src, dst = source.info, warehouse.info
    assert (read["namespace"], read["name"]) == (f"postgres://{src.host}:{src.port}", f"{src.dbname}.t_src.lines")
    assert (written["namespace"], written["name"]) == (f"postgres://{dst.host}:{dst.port}",
                                                       f"{dst.dbname}.t_dst.lines")
    fields = {f["name"]: f["type"] for f in read["facets"]["schema"]["fields"]}
    assert {"order_id", "line", "qty", "note", "updated_at"} <= set(fields) and fields["updated_at"].startswith(
        "timestamp"), fields
    assert {f["name"] for f in written["facets"]["schema"]["fields"]} >= set(fields) | {"_deleted_at"}
    assert written["outputFacets"]["outputStatistics"]["rowCount"] == 80
    assert read["inputFacets"]["inputStatistics"]["rowCount"] == 80

    (validate,) = _events("sync_lines.validate", "COMPLETE")
    (checked,) = validate["inputs"]
    assert checked["name"] == f"{dst.dbname}.t_dst.lines"
    assertions = {a["assertion"]: a for a in checked["inputFacets"]["dataQualityAssertions"]["assertions"]}
    assert assertions["expect_column_values_to_be_between"]["success"] is True
    assert assertions["expect_column_values_to_be_between"]["column"] == "qty"
    assert checked["inputFacets"]["dataQualityMetrics"]["rowCount"] == 80
