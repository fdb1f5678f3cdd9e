"""Hostile sources (issue 25) on a real PostgreSQL, bounds and windows: wide rows, mass drift, local-time
cursors, and intervals never loaded."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest
from helpers import (
    T0,
    create_items,
    create_lines,
    items_pipeline,
    lines_pipeline,
    make_pipeline,
    run_tasks,
    simple_rows,
    sync_window,
    warehouse_rows,
)

from warehouse_sync import tasks
from warehouse_sync.db.catalog import CursorTimeZone
from warehouse_sync.model import RunStart
from warehouse_sync.reconcile import loop
from warehouse_sync.reconcile.repair import RepairRefused
from warehouse_sync.run import Run

H = timedelta(hours=1)


def _plan_audit(warehouse, run_id: str) -> tuple:
    row = warehouse.execute("SELECT window_start, window_end, detail->>'why' FROM warehouse_sync.audit "
                            "WHERE step = 'plan' AND run_id = %s", (run_id,)).fetchone()
    warehouse.commit()
    return row


# Case 12: intervals skipped (catchup=False after an outage) or failed are re-read by the next scheduled run.

def test_a_scheduled_run_after_an_outage_syncs_the_updates_of_the_intervals_never_loaded(source, warehouse,
                                                                                           tmp_path):
    create_items(source, simple_rows(10))
    pipeline = items_pipeline()
    sync_window(source, warehouse, pipeline, T0, T0 + 2 * H, tmp_path, run_id="before")  # watermark T0 + 2 h
    # The outage: runs of [T0 + 2 h, T0 + 6 h) never happen, while the application updates a row.
    source.execute("UPDATE t_src.items SET note = 'during the outage', updated_at = %s WHERE id = 3", (T0 + 3 * H,))
    source.commit()

    sync_window(source, warehouse, pipeline, T0 + 6 * H, T0 + 8 * H, tmp_path, run_id="after")

    assert ("a", 3, 3.5, "during the outage", T0 + 3 * H) in warehouse_rows(warehouse)
    start, end, why = _plan_audit(warehouse, "after")
    assert (start, end) == (T0 + 2 * H, T0 + 8 * H) and "extended back to the watermark" in why


def test_a_backfill_of_older_windows_syncs_only_its_own_windows(source, warehouse, tmp_path):
    create_items(source, simple_rows(10))
    pipeline = items_pipeline()
    sync_window(source, warehouse, pipeline, T0 + 6 * H, T0 + 8 * H, tmp_path, run_id="latest",
                reconcile=False)  # watermark T0 + 8 h, nothing loaded
    for n, start in enumerate((T0, T0 + 2 * H)):  # older windows, loaded after the latest one
        run = RunStart.scheduled(start, start + 2 * H, backfill=True)
        run_tasks(source, warehouse, pipeline, run, tmp_path, run_id=f"backfill-{n}", reconcile=False)
        assert _plan_audit(warehouse, f"backfill-{n}") == (start, start + 2 * H, "the data interval")
    # A backfill window past the watermark is not extended back to it either.
    run_tasks(source, warehouse, pipeline, RunStart.scheduled(T0 + 10 * H, T0 + 12 * H, backfill=True), tmp_path,
              run_id="ahead", reconcile=False)
    assert _plan_audit(warehouse, "ahead") == (T0 + 10 * H, T0 + 12 * H, "the data interval")
    assert len(warehouse_rows(warehouse)) == 10


# Case 7: the repair ceiling stops counting: an emptied source costs no more than ceiling + 1 keys.

def _emptied_lines(source, warehouse, tmp_path):
    """t_src.lines (1 200 rows) loaded by a snapshot, then every source row deleted; a ceiling of 10 keys."""
    create_lines(source)
    sync_window(source, warehouse, lines_pipeline(), None, T0 + 2 * H, tmp_path, run_id="snapshot",
                full_snapshot=True)
    source.execute("DELETE FROM t_src.lines")
    source.commit()
    return lines_pipeline(repair_max_rows=10)


def _drift_rows(warehouse) -> list[tuple]:
    rows = warehouse.execute("SELECT scope, missing + extra + changed, refused, (sample->>'truncated')::boolean, "
                             "(sample->>'at_least')::int FROM warehouse_sync.drift_history ORDER BY id").fetchall()
    warehouse.commit()
    return rows


def test_the_daily_reconcile_of_an_emptied_source_refuses_having_collected_at_most_the_ceiling_plus_one_key(
        source, warehouse, tmp_path):
    pipeline = _emptied_lines(source, warehouse, tmp_path)
    with pytest.raises(RepairRefused, match=r"at least \d+ rows differ .* ceiling is 10 .*Nothing was changed"):
        tasks.reconcile_table(Run(pipeline, source, warehouse, "daily"), None)
    [(scope, collected, refused, truncated, at_least)] = _drift_rows(warehouse)
    assert (scope, refused, truncated) == ("table", True, True) and collected <= 11 and at_least > 10
    assert warehouse.execute("SELECT count(*) FROM t_dst.lines WHERE _deleted_at IS NULL").fetchone() == (1200,)


def test_the_per_run_key_check_of_an_emptied_source_refuses_from_its_counts_without_reading_a_key(
        source, warehouse, tmp_path):
    pipeline = _emptied_lines(source, warehouse, tmp_path)
    with pytest.raises(RepairRefused, match=r"at least 1200 rows differ .* ceiling is"):
        sync_window(source, warehouse, pipeline, T0 + 2 * H, T0 + 4 * H, tmp_path, run_id="next")
    assert _drift_rows(warehouse) == [("window", 0, True, True, 1200)]
    assert warehouse.execute("SELECT count(*) FROM t_dst.lines WHERE _deleted_at IS NULL").fetchone() == (1200,)


# Case 6: pages are bounded by bytes as well as rows.

WIDE_DDL = """
CREATE TABLE t_src.wide (id bigint PRIMARY KEY, body text NOT NULL, updated_at timestamptz NOT NULL);
CREATE INDEX ON t_src.wide (updated_at, id);
"""


def _wide_rows(source, rows: int = 40) -> None:
    """Rows of 1-12 kB of text with quotes, commas and newlines; several share one cursor value."""
    source.execute(WIDE_DDL)
    source.execute("""
        INSERT INTO t_src.wide
        SELECT i, repeat(md5(i::text) || E'"a, b"\\n', 25 * (1 + i %% 12)), %s + (i / 3) * interval '1 minute'
        FROM generate_series(1, %s) i""", (T0, rows))
    source.commit()


def _same_wide_rows(source, warehouse) -> list[tuple]:
    query = "SELECT id, md5(body), updated_at FROM {} ORDER BY id"
    ours = source.execute(query.format("t_src.wide")).fetchall()
    theirs = warehouse.execute(query.format("t_dst.wide")).fetchall()
    source.commit()
    warehouse.commit()
    assert ours == theirs
    return theirs


def test_wide_rows_are_read_in_pages_ended_by_the_byte_bound_and_every_row_arrives_once(source, warehouse,
                                                                                         tmp_path):
    _wide_rows(source)
    pipeline = make_pipeline("wide", ("id",), batch_size=1000, page_size=1000, page_bytes=20_000)
    result = sync_window(source, warehouse, pipeline, T0, T0 + 2 * H, tmp_path, run_id="wide")
    [staged] = [f for e in result["files"] for f in e["files"]]
    pages = pq.ParquetFile(staged["path"])  # one row group per page written
    sizes = [pages.metadata.row_group(i).num_rows for i in range(pages.num_row_groups)]
    assert sum(sizes) == 40 and len(sizes) >= 10 and max(sizes) <= 5
    assert len(_same_wide_rows(source, warehouse)) == 40


def test_a_page_holds_at_least_one_row_wider_than_the_byte_bound(source, warehouse, tmp_path):
    _wide_rows(source, rows=7)
    pipeline = make_pipeline("wide", ("id",), batch_size=1000, page_size=1000, page_bytes=1)
    result = sync_window(source, warehouse, pipeline, T0, T0 + 2 * H, tmp_path, run_id="one")
    [staged] = [f for e in result["files"] for f in e["files"]]
    assert pq.ParquetFile(staged["path"]).num_row_groups == 7
    assert len(_same_wide_rows(source, warehouse)) == 7


# Case 10: a `timestamp without time zone` cursor written in local time, across a DST change.

BERLIN = "Europe/Berlin"
FALL_BACK = datetime(2026, 10, 25, 1, 0, tzinfo=timezone.utc)  # 03:00 CEST becomes 02:00 CET


def _local_table(source, cursor_type: str = "timestamp") -> None:
    source.execute(f"CREATE TABLE t_src.local (id bigint PRIMARY KEY, note text, updated_at {cursor_type} NOT NULL); "
                   "CREATE INDEX ON t_src.local (updated_at, id)")
    source.commit()


def _write_local(writer, ids: range, start: datetime, step: timedelta) -> None:
    """The application: a session in Europe/Berlin inserting rows with its local time at each instant."""
    writer.execute("SET TimeZone = 'Europe/Berlin'")
    for i in ids:
        writer.execute("INSERT INTO t_src.local VALUES (%s, %s, %s::timestamptz::timestamp)",
                       (i, f"row {i}", start + (i - ids.start) * step))
    writer.commit()


def test_a_local_time_cursor_across_a_dst_change_syncs_each_row_exactly_once(source, second_source, warehouse,
                                                                               tmp_path):
    _local_table(source)
    pipeline = make_pipeline("local", ("id",), cursor_time_zone=BERLIN)
    extracted: dict[int, int] = {}
    # Hourly runs from 22:00 to 04:00 UTC; before each, the application writes a row every 10 minutes of its hour.
    for hour in range(-3, 3):
        start = FALL_BACK + hour * H
        ids = range(100 + 6 * (hour + 3), 106 + 6 * (hour + 3))
        _write_local(second_source, ids, start, timedelta(minutes=10))
        result = sync_window(source, warehouse, pipeline, start, start + H, tmp_path, run_id=f"h{hour}")
        extracted[hour] = sum(f["rows"] for f in result["files"])
    # Every row once: its own window, but for the repeated hour 02:00-03:00 local: the rows CEST wrote then carry
    # the same wall-clock times as CET's, so both are in the window that ends at 03:00 CET.
    assert extracted == {-3: 6, -2: 6, -1: 0, 0: 12, 1: 6, 2: 6}
    rows = warehouse_rows(warehouse, "t_dst.local", "id, note, updated_at")
    assert [r[0] for r in rows] == list(range(100, 136))
    assert rows == source.execute("SELECT id, note, updated_at FROM t_src.local ORDER BY 1, 2").fetchall()


def test_a_local_time_cursor_without_its_time_zone_is_refused_at_plan_time_with_the_fix(source, warehouse, tmp_path):
    _local_table(source)
    with pytest.raises(CursorTimeZone, match=r"timestamp without time zone.*cursor_time_zone: Europe/Berlin"):
        sync_window(source, warehouse, make_pipeline("local", ("id",)), T0, T0 + H, tmp_path)


def test_a_time_zone_for_a_timestamptz_cursor_is_refused(source, warehouse, tmp_path):
    _local_table(source, "timestamptz")
    with pytest.raises(CursorTimeZone, match=r"remove cursor_time_zone"):
        sync_window(source, warehouse, make_pipeline("local", ("id",), cursor_time_zone=BERLIN), T0, T0 + H, tmp_path)


def test_with_changes_pending_every_differing_key_is_located_so_that_they_do_not_count_against_the_ceiling(
        source, warehouse, tmp_path):
    pipeline = _emptied_lines(source, warehouse, tmp_path)
    # e.g. CDC: deletes of two keys committed after the run's LSN
    pending = {(str(o), str(n)) for o, n in warehouse.execute("SELECT order_id, line FROM t_dst.lines LIMIT 2")}
    warehouse.commit()
    with pytest.raises(RepairRefused, match=r"1198 rows differ"):
        loop.reconcile_table(Run(pipeline, source, warehouse, "daily"), None, pending=lambda: pending)
    assert _drift_rows(warehouse) == [("table", 1198, True, False, 1198)]
