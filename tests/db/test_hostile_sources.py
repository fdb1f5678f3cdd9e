"""Hostile sources (issue 25) on a real PostgreSQL: table shapes and sessions production sources have
that must neither break the source, stop the sync for good, nor lose rows."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from helpers import (
    T0,
    create_items,
    create_lines,
    items_pipeline,
    lines_pipeline,
    logical_wal_source,
    make_pipeline,
    run_tasks,
    simple_rows,
    sync_window,
    warehouse_rows,
)

from warehouse_sync import tasks
from warehouse_sync.alerts import alert_failure
from warehouse_sync.cdc import slot as slots
from warehouse_sync.config import Alerts
from warehouse_sync.db.connections import WAREHOUSE_CONN_ID, sqlalchemy_url
from warehouse_sync.model import Plan, RunStart
from warehouse_sync.run import Run
from warehouse_sync.sync.plan import NullableCursor


@pytest.fixture
def logical_source(source):
    """The source on a wal_level=logical server (else skipped), without the slots and publications of these tests."""
    with logical_wal_source(source, ("rid", "snap")) as conn:
        yield conn


def manual_now(full_snapshot: bool = False) -> RunStart:
    """A manual run without a logical date, now."""
    return RunStart(None, None, None, datetime.now(timezone.utc), manual=True, full_snapshot=full_snapshot)


def cdc_run(source, warehouse, pipeline, root, run_id: str, full_snapshot: bool = False,
            reconcile: bool = True) -> dict:
    """One manual CDC run now, through the task functions the DAG calls."""
    return run_tasks(source, warehouse, pipeline, manual_now(full_snapshot), root, run_id, reconcile)


# Case 1: CDC on a table whose replica identity does not carry the key.

def _rid_table(source, ddl: str) -> None:
    source.execute(ddl)
    source.execute("INSERT INTO t_src.rid (id, code, note, updated_at) "
                   "SELECT i, 'c' || i, 'n' || i, now() FROM generate_series(1, 5) i")
    source.commit()


def _application_writes(source) -> None:
    """What the application does to the table: an UPDATE and a DELETE (raises if PostgreSQL rejects them)."""
    source.execute("UPDATE t_src.rid SET note = 'app' WHERE id = 1")
    source.execute("DELETE FROM t_src.rid WHERE id = 2")
    source.commit()


def test_a_table_without_primary_key_is_refused_with_the_fix_and_application_updates_and_deletes_still_work(
        logical_source, warehouse, tmp_path):
    _rid_table(logical_source, "CREATE TABLE t_src.rid (id bigint NOT NULL, code text, note text, "
                               "updated_at timestamptz NOT NULL, CONSTRAINT rid_id_key UNIQUE (id))")
    pipeline = make_pipeline("rid", ("id",), mode="cdc")
    with pytest.raises(slots.ReplicaIdentityUnusable,
                       match=r"no primary key.*reject every UPDATE and DELETE.*not added to publication ws_rid.*"
                             + re.escape('ALTER TABLE "t_src"."rid" REPLICA IDENTITY USING INDEX "rid_id_key"')):
        cdc_run(logical_source, warehouse, pipeline, tmp_path, "r1")
    with pytest.raises(slots.ReplicaIdentityUnusable):  # the extract's own check, before it publishes anything
        slots.ensure_publication(logical_source, pipeline)
    _application_writes(logical_source)  # the table was not published: the application is unharmed
    logical_source.execute("ALTER TABLE t_src.rid REPLICA IDENTITY USING INDEX rid_id_key")  # the fix it gave
    logical_source.commit()
    cdc_run(logical_source, warehouse, pipeline, tmp_path, "r2")
    logical_source.execute("DELETE FROM t_src.rid WHERE id = 3")
    logical_source.commit()
    later = cdc_run(logical_source, warehouse, pipeline, tmp_path, "r3")
    assert later["loaded"]["staged"] == 1  # the delete arrived with its key
    deleted = warehouse.execute("SELECT id FROM t_dst.rid WHERE _deleted_at IS NOT NULL").fetchall()
    warehouse.commit()
    assert deleted == [(3,)]


def test_a_key_that_differs_from_the_replica_identity_is_refused_with_the_fix(logical_source, warehouse, tmp_path):
    _rid_table(logical_source, "CREATE TABLE t_src.rid (id bigint PRIMARY KEY, code text NOT NULL, note text, "
                               "updated_at timestamptz NOT NULL, CONSTRAINT rid_code_key UNIQUE (code))")
    pipeline = make_pipeline("rid", ("code",), mode="cdc")
    # the key is a unique index over NOT NULL columns, not the replica identity: the fix names that index
    with pytest.raises(slots.ReplicaIdentityUnusable,
                       match=r"logs only \['id'\].*without the pipeline's key \['code'\].*"
                             + re.escape('ALTER TABLE "t_src"."rid" REPLICA IDENTITY USING INDEX "rid_code_key"')):
        cdc_run(logical_source, warehouse, pipeline, tmp_path, "r1")
    _application_writes(logical_source)
    logical_source.execute("ALTER TABLE t_src.rid REPLICA IDENTITY USING INDEX rid_code_key")
    logical_source.commit()
    cdc_run(logical_source, warehouse, pipeline, tmp_path, "r2")  # usable now


# Case 3: one idle-in-transaction session must not pin every window's start.

def _now(conn) -> datetime:
    (now,) = conn.execute("SELECT clock_timestamp()").fetchone()
    conn.commit()
    return now


def _plan(source, warehouse, end: datetime, run_id: str = "p", **settings):
    """The plan of the scheduled window ``[end - 1 h, end)`` over t_src.items, waiting 1 s for late commits."""
    pipeline = items_pipeline(settle_timeout_seconds=1, **settings)
    return tasks.plan(Run(pipeline, source, warehouse, run_id), RunStart.scheduled(end - timedelta(hours=1), end))


def _plan_row(warehouse, run_id: str) -> tuple:
    row = warehouse.execute("SELECT status, detail FROM warehouse_sync.audit WHERE step = 'plan' AND run_id = %s",
                            (run_id,)).fetchone()
    warehouse.commit()
    return row


def test_a_read_only_session_idle_in_transaction_does_not_hold_the_late_horizon(source, second_source, warehouse):
    create_items(source, simple_rows(3))
    second_source.execute("SELECT count(*) FROM t_src.items")  # opens a transaction and leaves it idle
    try:
        time.sleep(0.05)
        planned = _plan(source, warehouse, _now(source))
    finally:
        second_source.rollback()
    assert planned.late_horizon is None  # it can commit no row: nothing to wait for or re-read


def test_a_writing_session_idle_in_transaction_holds_the_late_horizon(source, second_source, warehouse):
    create_items(source, simple_rows(3))
    second_source.execute("UPDATE t_src.items SET note = 'w' WHERE id = 0")
    (began,) = second_source.execute("SELECT now()").fetchone()
    try:
        time.sleep(0.05)
        planned = _plan(source, warehouse, _now(source))
    finally:
        second_source.rollback()
    assert planned.late_horizon == began and not planned.alerts


def test_a_late_horizon_older_than_its_maximum_age_is_bounded_warned_every_run_and_alerted_once(
        source, second_source, warehouse):
    create_items(source, simple_rows(3))
    second_source.execute("UPDATE t_src.items SET note = 'stuck' WHERE id = 0")  # a forgotten writing session
    try:
        time.sleep(1.2)
        first_end = _now(source)
        first = _plan(source, warehouse, first_end, "p1", late_horizon_max_age_seconds=1)
        second_end = _now(source)
        second = _plan(source, warehouse, second_end, "p2", late_horizon_max_age_seconds=1)
    finally:
        second_source.rollback()
    assert first.late_horizon == first_end - timedelta(seconds=1)  # not the session's start: bounded
    assert second.late_horizon == second_end - timedelta(seconds=1)
    assert len(first.alerts) == 1 and "late horizon bounded" in first.alerts[0]
    assert second.alerts == ()  # alerted once for this transaction
    for run_id in ("p1", "p2"):
        status, detail = _plan_row(warehouse, run_id)
        assert status == "warn" and any("late_horizon_max_age_seconds" in w for w in detail["warnings"])


# Case 13: late commits the wait cannot see.

@contextmanager
def limited_role_of(source):
    """The source session switched to a role without pg_read_all_stats (reads t_src only)."""
    source.execute("DROP ROLE IF EXISTS ws_test_limited")
    source.execute("CREATE ROLE ws_test_limited")
    source.execute("GRANT USAGE ON SCHEMA t_src TO ws_test_limited")
    source.execute("GRANT SELECT ON ALL TABLES IN SCHEMA t_src TO ws_test_limited")
    source.execute("SET ROLE ws_test_limited")
    source.commit()
    try:
        yield source
    finally:
        source.rollback()
        source.execute("RESET ROLE")
        source.execute("DROP OWNED BY ws_test_limited")
        source.execute("DROP ROLE ws_test_limited")
        source.commit()


def test_a_role_that_cannot_see_other_roles_transactions_is_warned_with_the_grant(source, warehouse):
    create_items(source, simple_rows(3))
    _plan(source, warehouse, _now(source), "seen")
    assert _plan_row(warehouse, "seen")[0] == "ok"  # a superuser sees every session
    with limited_role_of(source):
        planned = _plan(source, warehouse, _now(source), "blind")
    assert any('GRANT pg_read_all_stats TO "ws_test_limited"' in w for w in planned.warnings)
    status, detail = _plan_row(warehouse, "blind")
    assert status == "warn" and "cannot see other roles' transactions" in detail["warnings"][0]


def test_a_prepared_transaction_is_waited_for_and_then_bounds_the_horizon(source, second_source, warehouse):
    (slots_free,) = source.execute("SHOW max_prepared_transactions").fetchone()
    source.commit()
    if int(slots_free) == 0:
        pytest.skip("this PostgreSQL runs with max_prepared_transactions = 0: no transaction can be prepared")
    create_items(source, simple_rows(3))
    second_source.execute("UPDATE t_src.items SET note = 'prepared' WHERE id = 1")
    second_source.execute("PREPARE TRANSACTION 'ws_test_prepared'")
    second_source.commit()
    try:
        end = _now(source)
        planned = _plan(source, warehouse, end, "prep", late_horizon_max_age_seconds=600)
    finally:
        second_source.autocommit = True  # ROLLBACK PREPARED runs outside a transaction block
        second_source.execute("ROLLBACK PREPARED 'ws_test_prepared'")
    # its start is not recorded: the horizon is the furthest back the sync re-reads, and the operator is told
    assert planned.late_horizon == end - timedelta(seconds=600)
    assert planned.alerts and "prepared at" in planned.alerts[0]


# Case 9: rows with a NULL cursor would be in no window and no snapshot.

def test_a_nullable_cursor_is_refused_at_plan_time_with_the_fix_and_synced_once_fixed(source, warehouse, tmp_path):
    create_items(source, simple_rows(3))
    source.execute("ALTER TABLE t_src.items ALTER COLUMN updated_at DROP NOT NULL")
    source.execute("INSERT INTO t_src.items (tenant, id, note, updated_at) VALUES ('a', 99, 'no cursor', NULL)")
    source.commit()
    pipeline = items_pipeline()
    with pytest.raises(NullableCursor, match=r"\(1 row\(s\) are now\).*never be synced.*" + re.escape(
            'ALTER TABLE "t_src"."items" ALTER COLUMN "updated_at" SET NOT NULL')):
        sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path)
    source.execute("UPDATE t_src.items SET updated_at = %s WHERE updated_at IS NULL", (T0 + timedelta(minutes=30),))
    source.execute("ALTER TABLE t_src.items ALTER COLUMN updated_at SET NOT NULL")  # the fix the message gave
    source.commit()
    sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path)
    assert [r[1] for r in warehouse_rows(warehouse)] == [0, 1, 2, 99]


# Case 14: a CDC full_snapshot must keep the live slot until its snapshot is loaded.

def _snap_table(source) -> None:
    source.execute("CREATE TABLE t_src.snap (id bigint PRIMARY KEY, note text, "
                   "updated_at timestamptz NOT NULL DEFAULT now())")
    source.execute("INSERT INTO t_src.snap (id, note) SELECT i, 'n' || i FROM generate_series(1, 5) i")
    source.commit()


def _changes_meanwhile(source) -> None:
    source.execute("UPDATE t_src.snap SET note = 'between' WHERE id = 1")
    source.execute("DELETE FROM t_src.snap WHERE id = 2")
    source.execute("INSERT INTO t_src.snap (id, note) VALUES (6, 'new')")
    source.commit()


def _same_rows(source, warehouse) -> bool:
    src = source.execute("SELECT id, note FROM t_src.snap ORDER BY id").fetchall()
    dst = warehouse.execute("SELECT id, note FROM t_dst.snap WHERE _deleted_at IS NULL ORDER BY id").fetchall()
    source.commit()
    warehouse.commit()
    return src == dst


def test_a_full_snapshot_that_never_loads_keeps_the_live_slot_and_loses_no_change(logical_source, warehouse,
                                                                                   tmp_path):
    _snap_table(logical_source)
    pipeline = make_pipeline("snap", ("id",), mode="cdc")
    cdc_run(logical_source, warehouse, pipeline, tmp_path, "r1")
    _changes_meanwhile(logical_source)  # committed, in the live slot, not in the warehouse yet
    run = Run(pipeline, logical_source, warehouse, "r2")
    planned = tasks.plan(run, manual_now(full_snapshot=True))
    tasks.extract(run, planned, planned.batches[0], root=tmp_path / "never-loaded")  # then its load fails for good
    assert slots.health(logical_source, "ws_snap").exists
    daily = tasks.health(run)  # the daily health task tells of the pending slot while no sync run drops it
    assert any("wsn_snap of a full_snapshot that never loaded" in line for line in daily.alerts)
    later = cdc_run(logical_source, warehouse, pipeline, tmp_path, "r3", reconcile=False)
    assert later["files"][0]["facts"]["kind"] == "changes" and later["loaded"]["staged"] == 3
    assert _same_rows(logical_source, warehouse)  # the changes came from the kept slot, not from a repair
    assert not slots.health(logical_source, "wsn_snap").exists  # the unloaded snapshot's slot retains no WAL


def test_a_full_snapshot_that_loads_replaces_the_live_slot_and_changes_continue_from_it(logical_source, warehouse,
                                                                                        tmp_path):
    _snap_table(logical_source)
    pipeline = make_pipeline("snap", ("id",), mode="cdc")
    cdc_run(logical_source, warehouse, pipeline, tmp_path, "r1")
    _changes_meanwhile(logical_source)
    snapshot = cdc_run(logical_source, warehouse, pipeline, tmp_path, "r2", full_snapshot=True)  # marks id 2 deleted
    assert snapshot["files"][0]["facts"]["slot"] == "wsn_snap" and _same_rows(logical_source, warehouse)
    assert not slots.health(logical_source, "wsn_snap").exists and slots.health(logical_source, "ws_snap").exists
    logical_source.execute("UPDATE t_src.snap SET note = 'after' WHERE id = 3")
    logical_source.commit()
    after = cdc_run(logical_source, warehouse, pipeline, tmp_path, "r3", reconcile=False)
    assert after["loaded"]["staged"] == 1 and _same_rows(logical_source, warehouse)  # nothing lost or doubled


# Case 17: staged files and Data Docs readable by their owner only; no source values in audit rows or alerts.

def _modes(root) -> set[tuple[str, int]]:
    return {("folder" if p.is_dir() else "file", p.stat().st_mode & 0o777) for p in root.rglob("*")
            if p.is_file() or any(c.is_file() for c in p.iterdir())}


def test_staged_files_and_data_docs_are_owner_only(source, warehouse, tmp_path, db_uris, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_SYNC_REPORTS_ROOT", f"file://{tmp_path / 'reports'}")
    create_lines(source, orders=20)
    pipeline = lines_pipeline()
    planned = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path / "staging")["planned"]
    tasks.validate(warehouse, sqlalchemy_url(db_uris[WAREHOUSE_CONN_ID]), pipeline, Plan.from_dict(planned), "r1")
    assert _modes(tmp_path / "staging") == {("file", 0o600), ("folder", 0o700)}
    assert _modes(tmp_path / "reports") == {("file", 0o600), ("folder", 0o700)}


def test_a_failing_rows_source_values_stay_out_of_the_audit_row_and_the_alert(source, warehouse, tmp_path, caplog):
    create_items(source, simple_rows(3))
    pipeline = items_pipeline()
    sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path)
    warehouse.execute("ALTER TABLE t_dst.items ADD CONSTRAINT no_card CHECK (note NOT LIKE 'card %%') NOT VALID")
    warehouse.commit()
    source.execute("UPDATE t_src.items SET note = 'card 4111 1111', updated_at = %s WHERE id = 1",
                   (T0 + timedelta(minutes=90),))
    source.commit()
    with pytest.raises(psycopg.errors.CheckViolation) as failure:
        sync_window(source, warehouse, pipeline, T0 + timedelta(hours=1), T0 + timedelta(hours=2), tmp_path, "r2")
    assert "4111" in str(failure.value)  # what PostgreSQL said
    (error,) = warehouse.execute("SELECT detail->>'error' FROM warehouse_sync.audit WHERE run_id = 'r2' "
                                 "AND step = 'load' AND status = 'failed'").fetchone()
    warehouse.commit()
    assert "Failing row contains (values redacted)" in error and "4111" not in error
    with caplog.at_level("WARNING", logger="warehouse_sync.alerts"):
        alert_failure({"exception": failure.value, "run_id": "r2"}, Alerts(), "t_dst.items")
    assert "violates check constraint" in caplog.text and "4111" not in caplog.text


# Case 13 (the rest): a source clock behind the window end.

def test_a_source_clock_behind_the_window_end_is_waited_for_then_warned_with_the_fix(source):
    from warehouse_sync.db.inflight import clock_warnings

    now = _now(source)
    assert clock_warnings(source, now - timedelta(seconds=5), timeout_s=0) == []
    started = time.monotonic()
    assert clock_warnings(source, _now(source) + timedelta(seconds=1.5), timeout_s=5, tolerance_s=0.1) == []
    assert time.monotonic() - started >= 1.0, "a small skew within the settle timeout is waited out"
    (line,) = clock_warnings(source, _now(source) + timedelta(minutes=3), timeout_s=1)
    assert "behind the window end" in line and "lookback_minutes to at least 3" in line
