"""Hostile sources (issue 25) on a real PostgreSQL, bounds and windows: wide rows, mass drift, local-time
cursors, and intervals never loaded."""

from __future__ import annotations

from datetime import timedelta

from helpers import T0, create_items, items_pipeline, run_tasks, simple_rows, sync_window, warehouse_rows

from warehouse_sync.model import RunStart

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
