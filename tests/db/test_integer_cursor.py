"""Integer cursors (issue 26): a version column a sequence sets on every write, synced by marks.

A window of time means, for an integer cursor, the values between the marks its plans recorded at
window ends (:mod:`warehouse_sync.bookkeeping.marks`). These tests prove, on a real server, that
consecutive windows tile the values (each change read once, a retry reads the same rows), that a
late commit holding a value below the next mark is read by the next run, that deletes are found,
that a backfill before the first mark reads nothing and says so, and that CDC mode reconciles by
the same marks.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from threading import Thread

import pytest
from helpers import T0, logical_wal_source, make_pipeline, run_tasks, sync_window

from warehouse_sync import tasks
from warehouse_sync.db.catalog import CursorTimeZone, UnusableCursor, describe_pipeline_source
from warehouse_sync.db.connections import SOURCE_CONN_ID
from warehouse_sync.model import RunStart
from warehouse_sync.run import Run

HOUR = timedelta(hours=1)

VERSIONED_DDL = """
CREATE SEQUENCE t_src.version_seq;
CREATE TABLE t_src.versioned (
    id       bigint  PRIMARY KEY,
    note     text,
    version  bigint  NOT NULL
);
CREATE INDEX ON t_src.versioned (version, id);
CREATE FUNCTION t_src.bump_version() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.version := nextval('t_src.version_seq'); RETURN NEW; END $$;
CREATE TRIGGER bump BEFORE INSERT OR UPDATE ON t_src.versioned
    FOR EACH ROW EXECUTE FUNCTION t_src.bump_version();
"""


def _create(source, rows: int = 50) -> None:
    source.execute(VERSIONED_DDL)
    source.execute("INSERT INTO t_src.versioned (id, note, version) "
                   "SELECT i, 'note ' || i, 0 FROM generate_series(1, %s) AS i", (rows,))
    source.commit()


def _pipeline(**settings):
    return make_pipeline("versioned", ("id",), **{"cursor": "version", "initial_load": "snapshot",
                                                  "batch_size": 7, "page_size": 3, **settings})


def _rows(conn, table: str) -> list[tuple]:
    rows = conn.execute(f"SELECT id, note, version FROM {table} "  # test-only SQL
                        + ("WHERE _deleted_at IS NULL " if table.startswith("t_dst") else "")
                        + "ORDER BY id").fetchall()
    conn.commit()
    return rows


def _marks(warehouse) -> list[tuple]:
    rows = warehouse.execute("SELECT window_end, mark FROM warehouse_sync.cursor_marks "
                             "WHERE pipeline = 'versioned' ORDER BY window_end").fetchall()
    warehouse.commit()
    return rows


def test_integer_cursor_windows_read_each_change_once_and_a_retry_reads_the_same_rows(source, warehouse, tmp_path):
    _create(source)
    pipeline = _pipeline()
    first = sync_window(source, warehouse, pipeline, T0, T0 + 2 * HOUR, tmp_path, run_id="r1")
    assert first["planned"]["window"]["start"] is None and first["planned"]["window"]["cursor_end"] == 51
    assert first["loaded"]["merged"] == 50
    source.execute("UPDATE t_src.versioned SET note = note || ' changed' WHERE id <= 10")
    source.execute("INSERT INTO t_src.versioned (id, note, version) VALUES (51, 'new', 0), (52, 'new', 0)")
    source.execute("DELETE FROM t_src.versioned WHERE id = 20")
    source.commit()
    second = sync_window(source, warehouse, pipeline, T0 + 2 * HOUR, T0 + 4 * HOUR, tmp_path, run_id="r2")
    assert (second["planned"]["window"]["cursor_start"], second["planned"]["window"]["cursor_end"]) == (51, 63)
    assert second["loaded"]["staged"] == 12  # the 10 updates and 2 inserts, nothing else
    assert _rows(warehouse, "t_dst.versioned") == _rows(source, "t_src.versioned")  # the delete found by key check
    source.execute("UPDATE t_src.versioned SET note = 'after the mark' WHERE id = 1")  # version 63: a later window
    source.commit()
    retry = sync_window(source, warehouse, pipeline, T0 + 2 * HOUR, T0 + 4 * HOUR, tmp_path, run_id="r2")
    assert retry["planned"]["window"] == second["planned"]["window"]  # the recorded mark, not a new read
    assert retry["loaded"]["staged"] == 11  # row 1 moved past the mark since: the next window's
    assert [m for _, m in _marks(warehouse)] == [51, 63]
    third = sync_window(source, warehouse, pipeline, T0 + 4 * HOUR, T0 + 6 * HOUR, tmp_path, run_id="r3")
    assert third["loaded"]["staged"] == 1
    assert _rows(warehouse, "t_dst.versioned") == _rows(source, "t_src.versioned")


def test_a_late_commit_below_the_next_mark_is_read_by_the_run_after(source, warehouse, tmp_path, db_uris):
    import psycopg

    _create(source, rows=5)
    pipeline = _pipeline()
    sync_window(source, warehouse, pipeline, T0, T0 + 2 * HOUR, tmp_path, run_id="r1")
    with psycopg.connect(db_uris[SOURCE_CONN_ID]) as slow:
        slow.execute("INSERT INTO t_src.versioned (id, note, version) VALUES (100, 'late', 0)")  # version 6, open
        source.execute("INSERT INTO t_src.versioned (id, note, version) VALUES (101, 'quick', 0)")  # version 7
        source.commit()
        second = sync_window(source, warehouse, pipeline, T0 + 2 * HOUR, T0 + 4 * HOUR, tmp_path, run_id="r2",
                             reconcile=False)  # settle_timeout_seconds 0: the open insert is a late horizon
        assert second["planned"]["window"]["cursor_end"] == 8 and second["planned"]["late_horizon"] is not None
        slow.commit()
    assert [r[0] for r in _rows(warehouse, "t_dst.versioned")] == [1, 2, 3, 4, 5, 101]
    third = sync_window(source, warehouse, pipeline, T0 + 4 * HOUR, T0 + 6 * HOUR, tmp_path, run_id="r3")
    assert third["planned"]["window"]["cursor_start"] == 6  # back to the mark read before the late writer began
    assert _rows(warehouse, "t_dst.versioned") == _rows(source, "t_src.versioned")


def test_a_backfill_before_the_first_mark_reads_no_row_and_the_daily_reconcile_uses_marks(source, warehouse,
                                                                                         tmp_path):
    _create(source, rows=20)
    pipeline = _pipeline()
    sync_window(source, warehouse, pipeline, T0, T0 + 2 * HOUR, tmp_path, run_id="r1")
    back = run_tasks(source, warehouse, pipeline, RunStart.scheduled(T0 - 2 * HOUR, T0, backfill=True),
                     tmp_path, "back")
    assert back["planned"]["window"]["cursor_end"] == -(2**63) and back["loaded"]["staged"] == 0
    source.execute("INSERT INTO t_src.versioned (id, note, version) VALUES (21, 'after the mark', 0)")
    source.execute("DELETE FROM t_src.versioned WHERE id = 3")
    source.commit()
    daily = tasks.reconcile_table(Run(pipeline, source, warehouse, "daily")).to_dict()
    assert daily["drift"]["missing"] == 0 and daily["drift"]["extra"] == 1  # 21 is past the mark: in flight
    assert 3 not in [r[0] for r in _rows(warehouse, "t_dst.versioned")]


def test_an_integer_cursor_with_cursor_time_zone_is_refused_with_the_fix(source):
    _create(source, rows=1)
    with pytest.raises(CursorTimeZone, match="an integer with no time; remove cursor_time_zone"):
        describe_pipeline_source(source, _pipeline(cursor_time_zone="Europe/Berlin"))


def test_a_cursor_neither_timestamp_nor_integer_is_refused_with_the_fix(source):
    source.execute("CREATE TABLE t_src.versioned (id bigint PRIMARY KEY, version numeric NOT NULL)")
    source.commit()
    with pytest.raises(UnusableCursor, match="is numeric; a cursor must be timestamptz, timestamp"):
        describe_pipeline_source(source, _pipeline())


def test_concurrent_writers_during_integer_cursor_runs_lose_no_change(source, warehouse, tmp_path, db_uris):
    import psycopg

    _create(source, rows=200)
    pipeline = _pipeline(settle_timeout_seconds=5)
    stop = []

    def write() -> None:
        with psycopg.connect(db_uris[SOURCE_CONN_ID]) as conn:
            n = 1000
            while not stop:
                n += 1
                conn.execute("INSERT INTO t_src.versioned (id, note, version) VALUES (%s, 'w', 0)", (n,))
                conn.execute("UPDATE t_src.versioned SET note = 'u' || %s WHERE id = %s", (n, n % 200 + 1))
                conn.commit()

    writer = Thread(target=write)
    writer.start()
    try:
        for i in range(4):
            sync_window(source, warehouse, pipeline, T0 + 2 * i * HOUR, T0 + 2 * (i + 1) * HOUR, tmp_path,
                        run_id=f"r{i}", reconcile=False)
    finally:
        stop.append(True)
        writer.join()
    assert len(_rows(source, "t_src.versioned")) > 210  # the writer wrote during the runs
    sync_window(source, warehouse, pipeline, T0 + 8 * HOUR, T0 + 10 * HOUR, tmp_path, run_id="last")
    assert _rows(warehouse, "t_dst.versioned") == _rows(source, "t_src.versioned")


@pytest.fixture
def cdc_versioned_source(source):
    with logical_wal_source(source, ("versioned",)) as conn:
        yield conn


def test_cdc_mode_with_an_integer_cursor_reconciles_by_its_marks(cdc_versioned_source, warehouse, tmp_path):
    source = cdc_versioned_source
    _create(source, rows=30)
    pipeline = _pipeline(mode="cdc")
    start = RunStart(None, None, None, datetime.now(timezone.utc), manual=True)
    first = run_tasks(source, warehouse, pipeline, start, tmp_path, "r1")
    assert first["planned"]["window"]["cursor_end"] == 31 and first["loaded"]["merged"] == 30
    source.execute("UPDATE t_src.versioned SET note = 'changed' WHERE id <= 5")
    source.execute("DELETE FROM t_src.versioned WHERE id = 30")
    source.commit()
    start = RunStart(None, None, None, datetime.now(timezone.utc), manual=True)
    run_tasks(source, warehouse, pipeline, start, tmp_path, "r2")
    assert _rows(warehouse, "t_dst.versioned") == _rows(source, "t_src.versioned")
