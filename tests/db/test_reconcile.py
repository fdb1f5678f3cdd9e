"""Locate every differing key by checksum bisection, repair it, propagate deletes, refuse mass drift."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from helpers import T0, lines_pipeline, sync_window

from warehouse_sync import tasks
from warehouse_sync.db.catalog import describe_source
from warehouse_sync.reconcile.locate import locate
from warehouse_sync.reconcile.repair import RepairRefused, repair
from warehouse_sync.run import Run

HOUR = timedelta(hours=1)
AS_OF = T0 + HOUR


def columns_of(source, pipeline):
    return describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)


def inject_drift(source, warehouse):
    warehouse.execute("DELETE FROM t_dst.lines WHERE (order_id, line) IN ((10, 1), (250, 4))")     # missing
    source.execute("DELETE FROM t_src.lines WHERE order_id = 77")                                   # extra x4
    warehouse.execute("UPDATE t_dst.lines SET qty = qty + 1 WHERE (order_id, line) = (120, 2)")     # changed
    warehouse.execute("UPDATE t_dst.lines SET note = NULL WHERE (order_id, line) = (5, 3)")         # NULL
    source.commit()
    warehouse.commit()


def test_locate_names_every_missing_extra_and_changed_key_and_column(source, warehouse, synced):
    inject_drift(source, warehouse)
    diff = locate(source, warehouse, synced, columns_of(source, synced), AS_OF, factor=4, leaf_rows=50)
    assert diff.missing == [(10, 1), (250, 4)]
    assert diff.extra == [(77, 1), (77, 2), (77, 3), (77, 4)]
    assert diff.changed == [(5, 3), (120, 2)]
    assert diff.changed_columns == {(5, 3): ["note"], (120, 2): ["qty"]}
    assert diff.segments > 4  # it bisected


def test_identical_tables_show_no_drift(source, warehouse, synced):
    diff = locate(source, warehouse, synced, columns_of(source, synced), AS_OF, factor=4, leaf_rows=50)
    assert diff.total == 0


def test_repair_converges_soft_deletes_and_is_idempotent(source, warehouse, synced):
    inject_drift(source, warehouse)
    columns = columns_of(source, synced)
    diff = locate(source, warehouse, synced, columns, AS_OF)
    result = repair(Run(synced, source, warehouse, "repair-1"), columns, diff)
    assert (result.upserted, result.deleted) == (4, 4)
    assert locate(source, warehouse, synced, columns, AS_OF).total == 0
    kept = warehouse.execute("SELECT count(*) FROM t_dst.lines WHERE order_id = 77 AND _deleted_at IS NOT NULL")
    assert kept.fetchone() == (4,)  # soft delete keeps the rows for analysts
    again = repair(Run(synced, source, warehouse, "r2"), columns, locate(source, warehouse, synced, columns, AS_OF))
    assert again.total == 0


def test_hard_delete_mode_removes_rows_deleted_at_source(source, warehouse, synced):
    pipeline = lines_pipeline(delete_mode="hard")
    source.execute("DELETE FROM t_src.lines WHERE order_id IN (3, 4)")
    source.commit()
    columns = columns_of(source, pipeline)
    repair(Run(pipeline, source, warehouse, "hard"), columns, locate(source, warehouse, pipeline, columns, AS_OF))
    assert warehouse.execute("SELECT count(*) FROM t_dst.lines WHERE order_id IN (3, 4)").fetchone() == (0,)


def test_a_row_that_reappears_at_source_is_restored(source, warehouse, synced):
    columns = columns_of(source, synced)
    saved = source.execute("SELECT * FROM t_src.lines WHERE order_id = 9").fetchall()
    source.execute("DELETE FROM t_src.lines WHERE order_id = 9")
    source.commit()
    repair(Run(synced, source, warehouse, "del"), columns, locate(source, warehouse, synced, columns, AS_OF))
    with source.cursor() as cur:
        cur.executemany("INSERT INTO t_src.lines VALUES (%s, %s, %s, %s, %s)", saved)
    source.commit()
    diff = locate(source, warehouse, synced, columns, AS_OF)
    assert diff.missing == [(9, n) for n in range(1, 5)]
    repair(Run(synced, source, warehouse, "restore"), columns, diff)
    restored = warehouse.execute("SELECT count(*) FROM t_dst.lines WHERE order_id = 9 AND _deleted_at IS NULL")
    assert restored.fetchone() == (4,)


def test_repair_takes_the_source_row_even_when_its_cursor_went_backwards(source, warehouse, synced, tmp_path):
    """A late-committing transaction (or an application clock) wrote an older cursor after the load."""
    source.execute("UPDATE t_src.lines SET qty = 999, updated_at = %s WHERE (order_id, line) = (42, 1)",
                   (T0 - HOUR,))
    source.commit()
    full = lines_pipeline(per_run_table_check="full")  # by default the daily reconcile finds it
    result = sync_window(source, warehouse, full, AS_OF, AS_OF + HOUR, tmp_path, run_id="next")
    assert result["reconciled"]["drift"]["changed"] == 1 and result["reconciled"]["drift"]["repaired"] == 1
    assert warehouse.execute("SELECT qty FROM t_dst.lines WHERE (order_id, line) = (42, 1)").fetchone() == (999,)
    history = warehouse.execute("SELECT scope, changed, repaired, refused FROM warehouse_sync.drift_history")
    assert history.fetchall() == [("window", 1, 1, False)]


def test_mass_drift_beyond_the_ceiling_is_refused_and_changes_nothing(source, warehouse, synced):
    pipeline = lines_pipeline(repair_max_rows=5)
    warehouse.execute("UPDATE t_dst.lines SET note = 'wrong' WHERE order_id <= 10")
    warehouse.commit()
    with pytest.raises(RepairRefused, match=r"40 rows differ .* ceiling is 5"):
        tasks.reconcile_table(Run(pipeline, source, warehouse, "daily"), AS_OF)
    assert warehouse.execute("SELECT count(*) FROM t_dst.lines WHERE note = 'wrong'").fetchone() == (40,)
    assert warehouse.execute("SELECT refused FROM warehouse_sync.drift_history").fetchall() == [(True,)]


def test_rows_changed_after_as_of_are_in_flight_not_drift(source, warehouse, synced):
    source.execute("UPDATE t_src.lines SET qty = 0, updated_at = %s WHERE order_id <= 20", (AS_OF + HOUR,))
    source.commit()
    assert locate(source, warehouse, synced, columns_of(source, synced), AS_OF).total == 0


def test_reconcile_while_a_writer_keeps_updating_reports_no_false_drift(source, second_source, warehouse, synced):
    stop = threading.Event()
    writes = 0

    def writer():
        nonlocal writes
        order_id = 1
        while not stop.is_set():
            second_source.execute("UPDATE t_src.lines SET qty = qty + 1, updated_at = now() WHERE order_id = %s",
                                  (order_id,))
            second_source.commit()
            writes += 1
            order_id = order_id % 300 + 1
            time.sleep(0.002)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while writes < 20 and time.monotonic() < deadline:  # the writer is busy before the reconcile starts
            time.sleep(0.01)
        before = writes
        result = tasks.reconcile_table(Run(synced, source, warehouse, "daily"), AS_OF + 24 * HOUR).to_dict()
        during = writes - before
    finally:
        stop.set()
        thread.join()
    assert before >= 20 and during > 0
    assert result["drift"]["missing"] == result["drift"]["extra"] == result["drift"]["changed"] == 0

