"""Great Expectations on what a run loaded: fail and warn severities, stored results, Data Docs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import T0, create_lines, lines_pipeline, sync_window

from warehouse_sync import tasks
from warehouse_sync.config import Expectation
from warehouse_sync.db.connections import WAREHOUSE_CONN_ID, sqlalchemy_url
from warehouse_sync.model import Plan, Window
from warehouse_sync.quality.validate import DataQualityFailed, window_query

EXPECTATIONS = tuple(Expectation.parse(entry) for entry in [
    {"expect": "column_values_to_be_between", "column": "qty", "min_value": 0, "max_value": 100,
     "label": "quantity between 0 and 100"},
    {"expect": "column_values_to_not_be_null", "column": "note", "severity": "warn", "label": "every line has a note"},
])
WINDOW = timedelta(minutes=10)


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_SYNC_REPORTS_ROOT", f"file://{tmp_path / 'reports'}")
    return tmp_path / "reports"


@pytest.fixture
def url(db_uris):
    return sqlalchemy_url(db_uris[WAREHOUSE_CONN_ID])


def results(warehouse, run_id):
    rows = warehouse.execute(
        "SELECT label, severity, success, unexpected_count, sample, docs_path FROM warehouse_sync.dq_results"
        " WHERE run_id = %s ORDER BY id", [run_id]).fetchall()
    warehouse.commit()
    return {r[0]: r[1:] for r in rows}


def test_a_broken_row_fails_the_fail_expectation_names_its_key_and_is_recorded(
        source, warehouse, tmp_path, reports, url):
    pipeline = lines_pipeline(expectations=EXPECTATIONS)
    create_lines(source, orders=50)
    source.execute("UPDATE t_src.lines SET qty = 999 WHERE order_id = 7 AND line = 2")  # the trigger-free cursor stays
    source.commit()
    planned = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, run_id="r1")["planned"]
    with pytest.raises(DataQualityFailed) as failure:
        tasks.validate(warehouse, url, pipeline, Plan.from_dict(planned), "r1")
    message = str(failure.value)
    assert "t_dst.lines" in message and "quantity between 0 and 100: 1 of 200 rows unexpected" in message
    assert "order_id=7, line=2" in message
    stored = results(warehouse, "r1")
    severity, success, unexpected, sample, docs = stored["quantity between 0 and 100"]
    assert (severity, success, unexpected) == ("fail", False, 1)
    assert sample == [{"order_id": 7, "line": 2, "qty": 999.0}]
    assert stored["primary key is unique"][:2] == ("fail", True)
    page = reports / "data_docs" / docs
    html = page.read_text()
    assert page.is_file() and "qty" in html and "999" in html and "postgresql+psycopg" not in html


def test_warn_expectations_are_reported_and_do_not_fail_the_run(source, warehouse, tmp_path, reports, url):
    pipeline = lines_pipeline(expectations=EXPECTATIONS)
    create_lines(source, orders=50)  # some notes are NULL by construction
    planned = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, run_id="r2")["planned"]
    summary = tasks.validate(warehouse, url, pipeline, Plan.from_dict(planned), "r2")
    assert summary["failed"] == [] and len(summary["warned"]) == 1
    assert summary["warned"][0].startswith("every line has a note: ")
    severity, success, unexpected, _, _ = results(warehouse, "r2")["every line has a note"]
    assert (severity, success) == ("warn", False) and unexpected > 0
    # a retry of the same run replaces its rows instead of adding to them
    tasks.validate(warehouse, url, pipeline, Plan.from_dict(planned), "r2")
    (count,) = warehouse.execute("SELECT count(*) FROM warehouse_sync.dq_results WHERE run_id = 'r2'").fetchone()
    assert count == len(results(warehouse, "r2")) == 6  # 2 key not-null, key unique, 2 configured, volume


def test_a_window_far_above_the_recent_volume_is_a_volume_warning(source, warehouse, tmp_path, reports, url):
    pipeline = lines_pipeline(batch_size=5000, page_size=5000)
    create_lines(source, orders=900)  # 3600 lines, one per second of the hour after T0: 600 per window
    burst = T0 + 5 * WINDOW + timedelta(seconds=30)
    with source.cursor() as cur:
        cur.executemany("INSERT INTO t_src.lines VALUES (%s, 1, 1, 'burst', %s)",
                        [(o, burst) for o in range(1001, 2201)])
    source.commit()
    warned = {}
    for k in range(6):
        start = T0 + k * WINDOW
        planned = sync_window(source, warehouse, pipeline, start, start + WINDOW, tmp_path, run_id=f"w{k}")["planned"]
        warned[k] = tasks.validate(warehouse, url, pipeline, Plan.from_dict(planned), f"w{k}")["warned"]
    assert all(not warned[k] for k in range(5)), warned
    assert len(warned[5]) == 1 and (
        "rows in the window within 50% of the recent median (600): observed 1800" in warned[5][0])


def lines_of_one_second_each(warehouse, rows=100_000):
    """t_dst.lines with ``rows`` rows, one a second from T0, its cursor index ``lines_cursor``, analyzed."""
    warehouse.execute("CREATE SCHEMA t_dst; CREATE TABLE t_dst.lines (order_id bigint, line integer, qty numeric(12,2),"
                      " updated_at timestamptz NOT NULL, _deleted_at timestamptz, PRIMARY KEY (order_id, line))")
    warehouse.execute("INSERT INTO t_dst.lines SELECT o, 1, 5, %s + o * interval '1 second', NULL"
                      " FROM generate_series(1, %s) AS o", [T0, rows])
    warehouse.execute("CREATE INDEX lines_cursor ON t_dst.lines (updated_at); ANALYZE t_dst.lines")


def test_the_failing_row_samples_of_a_small_window_read_it_through_the_cursor_index(warehouse):
    # GX's sample queries put a LIMIT around the window; flattened into them, a filter the planner cannot
    # estimate (numeric < float) or a PARTITION BY key made it scan the whole table instead.
    pipeline = lines_pipeline()
    lines_of_one_second_each(warehouse)
    window = Window(T0 + timedelta(seconds=50_000), T0 + timedelta(seconds=52_000))
    query = window_query(warehouse, pipeline, window)
    samples = [f"SELECT order_id FROM ({query}) AS w WHERE qty < 0.0::float8 LIMIT 20",
               f"SELECT order_id FROM (SELECT order_id, count(*) OVER (PARTITION BY order_id) AS n FROM ({query}) AS a)"
               " AS w WHERE n >= 2 LIMIT 20"]
    for sample in samples:
        plan = "\n".join(r[0] for r in warehouse.execute(f"EXPLAIN {sample}"))  # test-only SQL
        assert "lines_cursor" in plan and "Seq Scan" not in plan and "lines_pkey" not in plan, plan
    assert len(warehouse.execute(query).fetchall()) == 2_000
    warehouse.rollback()


def test_a_window_holding_a_large_share_of_the_table_is_read_unordered(warehouse):
    lines_of_one_second_each(warehouse)  # ordering a big window costs more than the scans it avoids
    pipeline = lines_pipeline()
    big = window_query(warehouse, pipeline, Window(T0, T0 + timedelta(seconds=30_000)))
    snapshot = window_query(warehouse, pipeline, Window(None, T0 + timedelta(seconds=30_000)))
    warehouse.rollback()
    assert "ORDER BY" not in big and "ORDER BY" not in snapshot
