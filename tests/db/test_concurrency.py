"""Concurrent and late writes against real PostgreSQL, with two source sessions.

* A row updated while its window is being extracted is not lost (the OFFSET trap).
* A row whose transaction commits after its window was read reaches the warehouse: either the
  run waits it out, or a later run re-reads from the late horizon.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from helpers import T0, create_items, items_pipeline, simple_rows, sync_window, warehouse_rows

from warehouse_sync import tasks
from warehouse_sync.model import RunStart
from warehouse_sync.run import Run

HOUR = timedelta(hours=1)


def test_a_row_updated_during_extraction_is_not_lost(source, second_source, warehouse, tmp_path):
    create_items(source, simple_rows(12))
    pipeline = items_pipeline(batch_size=4, page_size=2)
    run = Run(pipeline, source, warehouse, "w1")
    planned = tasks.plan(run, RunStart.scheduled(T0, T0 + HOUR))
    assert len(planned.batches) == 3
    files = [tasks.extract(run, planned, planned.batches[0], root=tmp_path)]
    # Mid-run, another session updates a row of a batch not read yet AND a row already read:
    # with OFFSET paging, shifting rows would be skipped or read twice.
    second_source.execute("UPDATE t_src.items SET note = 'changed', updated_at = %s WHERE id IN (1, 9)",
                          (T0 + HOUR + timedelta(minutes=1),))
    second_source.commit()
    files += [tasks.extract(run, planned, b, root=tmp_path) for b in planned.batches[1:]]
    assert sum(f.rows for f in files) == 11  # id 9 moved out of the window before its batch was read
    tasks.load(run, planned, files, open_path=Path)
    tasks.reconcile(run, planned)  # no false drift: both are in flight
    sync_window(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path, run_id="w2")
    rows = warehouse_rows(warehouse, columns="tenant, id, note")
    assert len(rows) == 12 and len({r[1] for r in rows}) == 12
    assert [r[2] for r in rows if r[1] in (1, 9)] == ["changed", "changed"]


def open_late_update(source, second_source, row_id: int) -> tuple[datetime, datetime, datetime]:
    """Seeds rows over the last hour, then leaves an update of ``row_id`` uncommitted in ``second_source``.

    Returns:
        (window start, the open transaction's start = the row's new cursor, window end just after it).
    """
    start = source.execute("SELECT now()").fetchone()[0] - HOUR
    source.commit()
    create_items(source, simple_rows(3, start=start))
    second_source.execute("UPDATE t_src.items SET note = 'late', updated_at = now() WHERE id = %s", (row_id,))
    began = second_source.execute("SELECT now()").fetchone()[0]
    time.sleep(0.05)  # the window below has ended before it is read
    return start, began, began + timedelta(milliseconds=1)


def test_a_late_commit_is_waited_out_when_it_commits_within_the_settle_timeout(source, second_source, warehouse,
                                                                                tmp_path):
    start, _, end = open_late_update(source, second_source, 0)
    pipeline = items_pipeline(settle_timeout_seconds=20)
    committer = threading.Timer(1.5, second_source.commit)
    committer.start()
    try:
        result = sync_window(source, warehouse, pipeline, start, end, tmp_path)
    finally:
        committer.join()
    assert result["planned"]["late_horizon"] is None
    assert dict((r[1], r[3]) for r in warehouse_rows(warehouse))[0] == "late"


def test_a_late_commit_after_the_window_was_read_arrives_with_a_later_run(source, second_source, warehouse,
                                                                          tmp_path):
    start, began, end = open_late_update(source, second_source, 2)
    pipeline = items_pipeline(settle_timeout_seconds=1)
    first = sync_window(source, warehouse, pipeline, start, end, tmp_path, run_id="w1")
    assert datetime.fromisoformat(first["planned"]["late_horizon"]) == began
    assert dict((r[1], r[3]) for r in warehouse_rows(warehouse))[2] == "note 2"  # not committed yet
    second_source.commit()  # commits with a cursor inside the window that was already read
    later = sync_window(source, warehouse, pipeline, end, end + HOUR, tmp_path, run_id="w2")
    assert datetime.fromisoformat(later["planned"]["window"]["start"]) == began  # re-read from the horizon
    assert dict((r[1], r[3]) for r in warehouse_rows(warehouse))[2] == "late"
    state = warehouse.execute("SELECT late_horizon FROM warehouse_sync.sync_state WHERE pipeline = 'items'").fetchone()
    assert state == (None,)  # the horizon was released once covered
