"""Great Expectations on what a run loaded: fail and warn severities, stored results, Data Docs."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from helpers import T0, create_lines, lines_pipeline, sync_window

from warehouse_sync import tasks
from warehouse_sync.bookkeeping.migrate import ensure_tables
from warehouse_sync.config import Expectation
from warehouse_sync.db.connections import WAREHOUSE_CONN_ID, sqlalchemy_url
from warehouse_sync.model import Plan, Window
from warehouse_sync.quality.validate import DataQualityFailed, validate, window_query

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


def test_a_small_windows_rows_are_read_through_the_cursor_index_and_a_snapshot_by_one_scan(warehouse):
    # GX copies the window into a temporary table with the window query alone (no LIMIT around it), so the
    # planner sees the window: its cost follows the window, not the table.
    pipeline = lines_pipeline()
    lines_of_one_second_each(warehouse)
    small = window_query(warehouse, pipeline, Window(T0 + timedelta(seconds=50_000), T0 + timedelta(seconds=52_000)))
    snapshot = window_query(warehouse, pipeline, Window(None, T0 + timedelta(seconds=200_000)))
    plan = "\n".join(r[0] for r in warehouse.execute(f"EXPLAIN CREATE TEMPORARY TABLE w AS {small}"))  # test-only
    assert "lines_cursor" in plan and "Seq Scan" not in plan and "lines_pkey" not in plan, plan
    plan = "\n".join(r[0] for r in warehouse.execute(f"EXPLAIN CREATE TEMPORARY TABLE w AS {snapshot}"))
    assert "Seq Scan" in plan and "Sort" not in plan, plan
    assert len(warehouse.execute(small).fetchall()) == 2_000
    warehouse.rollback()


def test_validate_reads_the_window_once_on_the_server_and_never_fetches_its_rows(
        source, warehouse, tmp_path, reports, url, caplog):
    """GX would learn a query's columns by running it and fetching every row into the task: a snapshot's
    whole table. The window is copied into a temporary table on the server instead, and each expectation
    is an aggregate over it (samples of failing rows have a LIMIT, and are asked for only when some failed:
    then a second pass reads the window again, for those expectations)."""
    pipeline = lines_pipeline(expectations=EXPECTATIONS)
    create_lines(source, orders=50)
    source.execute("UPDATE t_src.lines SET note = 'n' WHERE note IS NULL")  # every expectation passes
    source.commit()
    planned = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, run_id="r5")["planned"]
    window = window_query(warehouse, pipeline, Plan.from_dict(planned).window)
    warehouse.commit()
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"):
        summary = tasks.validate(warehouse, url, pipeline, Plan.from_dict(planned), "r5")
    statements = [r.getMessage().strip() for r in caplog.records if r.name == "sqlalchemy.engine.Engine"]
    reading = [s for s in statements if window in s]
    assert len(reading) == 1 and reading[0].startswith("CREATE TEMPORARY TABLE"), reading  # one read, on the server
    assert window not in [s.rstrip(";").strip() for s in statements]  # the window is never run on its own
    assert summary["expectations"] == 6 and summary["failed"] == []


def _statements(caplog) -> list[str]:
    return [r.getMessage().strip() for r in caplog.records if r.name == "sqlalchemy.engine.Engine"]


def test_a_snapshot_that_is_the_whole_target_is_validated_in_place_without_a_copy(
        source, warehouse, tmp_path, reports, url, caplog):
    pipeline = lines_pipeline(expectations=EXPECTATIONS, initial_load="snapshot")
    create_lines(source, orders=50)
    planned = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, run_id="s1")["planned"]
    assert planned["window"]["start"] is None
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"):
        summary = tasks.validate(warehouse, url, pipeline, Plan.from_dict(planned), "s1")
    statements = _statements(caplog)
    assert not [s for s in statements if s.startswith("CREATE TEMPORARY TABLE")], statements  # read where it is
    assert any("t_dst.lines" in s for s in statements)
    assert summary["rows"] == 200 and summary["failed"] == []


def test_a_snapshots_target_with_a_soft_deleted_row_is_validated_through_the_window_query(
        source, warehouse, tmp_path, reports, url, caplog):
    pipeline = lines_pipeline(expectations=EXPECTATIONS, initial_load="snapshot")
    create_lines(source, orders=50)
    planned = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, run_id="s2")["planned"]
    warehouse.execute("UPDATE t_dst.lines SET _deleted_at = now(), qty = -1 WHERE order_id = 3")  # a tombstone
    warehouse.commit()
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"):
        summary = tasks.validate(warehouse, url, pipeline, Plan.from_dict(planned), "s2")
    assert [s for s in _statements(caplog) if s.startswith("CREATE TEMPORARY TABLE")]  # only the live rows
    assert summary["rows"] == 196 and summary["failed"] == []  # the tombstones' bad qty is not checked


def test_only_expectations_with_unexpected_rows_run_again_for_their_samples(
        source, warehouse, tmp_path, reports, url, caplog):
    pipeline = lines_pipeline(expectations=EXPECTATIONS, initial_load="snapshot")
    create_lines(source, orders=50)
    source.execute("UPDATE t_src.lines SET note = CASE WHEN order_id = 9 THEN NULL ELSE 'n' END")  # 4 rows lack one
    source.commit()
    planned = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, run_id="s3")["planned"]
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"):
        summary = tasks.validate(warehouse, url, pipeline, Plan.from_dict(planned), "s3")
    samples = [s for s in _statements(caplog) if "LIMIT" in s]
    # the counts' pass asks each expectation for LIMIT 0 rows; the samples' pass asks the failing one only
    assert len([s for s in samples if "qty" in s]) * 2 == len([s for s in samples if "note" in s]) > 0, samples
    stored = results(warehouse, "s3")
    assert stored["every line has a note"][:3] == ("warn", False, 4)
    assert sorted(r["line"] for r in stored["every line has a note"][3]) == [1, 2, 3, 4]
    assert stored["quantity between 0 and 100"][:4] == ("fail", True, 0, [])
    assert summary["warned"] and "failing" in summary["docs"]


def test_the_key_expectations_are_enforced_by_the_targets_primary_key_and_not_checked_again(
        source, warehouse, tmp_path, reports, url, caplog):
    pipeline = lines_pipeline(expectations=EXPECTATIONS)
    create_lines(source, orders=50)
    planned = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, run_id="r6")["planned"]
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"):
        tasks.validate(warehouse, url, pipeline, Plan.from_dict(planned), "r6")
    statements = " ".join(r.getMessage() for r in caplog.records if r.name == "sqlalchemy.engine.Engine")
    assert "PARTITION BY" not in statements  # no uniqueness pass over the window
    stored = results(warehouse, "r6")
    assert stored["primary key is unique"][:3] == ("fail", True, 0)
    assert stored["primary key order_id is set"][:3] == ("fail", True, 0)
    observed = warehouse.execute("SELECT observed_value FROM warehouse_sync.dq_results WHERE run_id = 'r6' "
                                 "AND label = 'primary key is unique'").fetchone()
    assert observed == ("enforced by the primary key constraint of t_dst.lines",)
    warehouse.commit()


def test_a_target_with_a_unique_index_but_no_primary_key_has_its_key_checked_by_great_expectations(
        warehouse, reports, url):
    pipeline = lines_pipeline()
    lines_of_one_second_each(warehouse, rows=1_000)
    warehouse.execute("ALTER TABLE t_dst.lines DROP CONSTRAINT lines_pkey, ALTER COLUMN order_id DROP NOT NULL")
    warehouse.execute("CREATE UNIQUE INDEX lines_key ON t_dst.lines (order_id, line)")
    warehouse.execute("INSERT INTO t_dst.lines VALUES (NULL, 1, 5, %s, NULL)", [T0 + timedelta(seconds=10)])
    warehouse.commit()
    ensure_tables(warehouse)
    with pytest.raises(DataQualityFailed, match="primary key order_id is set: 1 of 1,001 rows unexpected"):
        validate(warehouse, url, pipeline, Window(T0, T0 + timedelta(hours=1)), "r7", "sync_lines")
