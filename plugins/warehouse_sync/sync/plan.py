"""Plan: which rows a run owns (its window) and how they are split over mapped tasks (keyset batches).

A run owns the half-open window ``[start, end)`` of the cursor column (``start`` is ``None`` for an
initial snapshot). The window's rows are ordered by the keyset ``(cursor, pk...)``; a batch is a
half-open range of that order, ``[lower, upper)``, holding at most ``batch_size`` rows when planned.
Batches tile the window (the first has no lower bound, the last no upper bound), so a row whose
cursor is in the window is read by exactly one batch even if it arrives after planning.

Boundaries come from one index-order scan with ``row_number()`` over the key columns: never
``OFFSET``, which skips or repeats rows when rows move during a run (the "OFFSET trap"; see
use-the-index-luke.com/no-offset). A snapshot is cut in key order by
:func:`warehouse_sync.db.batches.key_batches`, which CDC mode's snapshot shares.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from warehouse_sync.config import Pipeline
from warehouse_sync.db.batches import at_most, key_batches, tile
from warehouse_sync.db.catalog import Column, integer_cursor
from warehouse_sync.db.statements import idents, load_sql, table_ident, text_of, window_filter
from warehouse_sync.model import Batch, RunStart, Window
from warehouse_sync.sync.keyset import keyset_columns

log = logging.getLogger(__name__)


class NullableCursor(LookupError):
    """The cursor column may be NULL: such a row is in no window and no snapshot, so it would never sync.

    The message gives the fix (``ALTER TABLE … ALTER COLUMN … SET NOT NULL``) and how many rows are NULL now.
    """


def check_cursor_not_null(conn: psycopg.Connection, pipeline: Pipeline, columns: list[Column]) -> None:
    """Refuses a cursor column without ``NOT NULL`` (docs/operating.md, "Hostile sources").

    A NULL cursor is not ``< window end``: the row would be left out of every window and snapshot, counted
    missing by every key check (using up the repair ceiling) and invisible to the window comparisons.

    Raises:
        NullableCursor: The column is nullable (the message: the rows NULL now and the exact fix).
    """
    column = next((c for c in columns if c.name == pipeline.cursor), None)
    if column is None or column.not_null:
        return
    table, cursor = table_ident(pipeline.source), sql.Identifier(pipeline.cursor)
    (nulls,) = conn.execute(load_sql("sync/null_cursor_rows.sql", table=table,  # type: ignore[misc]
                                     cursor=cursor)).fetchone()
    conn.commit()
    name, col = table.as_string(conn), cursor.as_string(conn)
    value = f"nextval('<the sequence that sets {pipeline.cursor}>')" if integer_cursor(pipeline, columns) else "now()"
    raise NullableCursor(
        f"pipeline {pipeline.name}: cursor column {pipeline.cursor!r} of {pipeline.source} may be NULL ({nulls} "
        f"row(s) are now); a row with a NULL cursor is in no window and no snapshot, so it would never be synced. "
        f"Fix on the source: UPDATE {name} SET {col} = {value} WHERE {col} IS NULL; then "
        f"ALTER TABLE {name} ALTER COLUMN {col} SET NOT NULL (on a large table first ADD CONSTRAINT … CHECK "
        f"({col} IS NOT NULL) NOT VALID and VALIDATE CONSTRAINT it, so SET NOT NULL does not scan under its "
        f"lock), and make the application set it; or sync the table with mode: cdc.")


def run_window(
    pipeline: Pipeline, schedule: str, run: RunStart, watermark: datetime | None, late_horizon: datetime | None,
) -> tuple[Window, str]:
    """The cursor window a run syncs, for every way a run starts (docs/operating.md).

    ==============================================  ============================================
    run                                             window
    ==============================================  ============================================
    scheduled                                       its data interval ``[start, end)``, its start
                                                    extended back to the watermark when that is
                                                    earlier (runs skipped or failed since)
    backfilled                                      its data interval ``[start, end)``
    manual with a logical date (the Trigger form,   the data interval Airflow gave it (what the UI
    ``airflow dags trigger -l``, the REST API)      shows), its end capped at the trigger time
    manual without a logical date                   ``[watermark, trigger time)``
    ``full_snapshot``, or a pipeline with no sync   every row with cursor < the end above
    state (``initial_load: snapshot``)
    ==============================================  ============================================

    No window ends after the trigger time (``run_after``) of the run: rows not yet written cannot
    be synced, and a later window would otherwise start past rows written meanwhile.

    A scheduled run whose start is past the watermark (the greatest window end loaded) follows
    intervals that were never loaded: runs skipped by ``catchup=False`` after an outage, or failed.
    It reads from the watermark, so their changes are synced now rather than by the daily
    reconcile. Backfill runs and manual runs with a logical date sync their own interval only: a
    backfill loads windows in any order, and a window before the watermark never extends.

    The start is then widened back by ``lookback_minutes`` and by a pending late horizon.

    Args:
        pipeline: The table's configuration (``initial_load``, ``lookback_minutes``).
        schedule: The DAG's cron expression, UTC (``"0 */2 * * *"``).
        run: How the run started.
        watermark: The end of the last loaded window (UTC), ``None`` before the first load.
        late_horizon: Where a late commit may still hide (UTC), or ``None``.

    Returns:
        The window and a short reason, for the log, the audit row and the task's XCom.
    """
    from croniter import croniter

    start: datetime | None
    end: datetime | None
    if run.logical_date is None or run.interval_end is None:
        end, start, why = run.run_after, watermark, "from the watermark to the trigger time"
    else:
        start, end, why = run.interval_start, run.interval_end, "the data interval"
        if run.manual and end > run.run_after:
            end, why = run.run_after, "the data interval, ended at the trigger time"
        if not run.manual and not run.backfill and watermark is not None and start is not None and watermark < start:
            log.warning("%s: the data interval starts at %s, after the watermark %s (runs skipped or failed since); "
                        "extending the window back to the watermark", pipeline.name, start, watermark)
            start, why = watermark, f"the data interval, extended back to the watermark {watermark.isoformat()} " \
                                    "(intervals since were never loaded)"
    if start is None and not run.full_snapshot and pipeline.initial_load == "window":
        start = croniter(schedule, end).get_prev(datetime)  # no watermark yet: one schedule interval
    if run.full_snapshot:
        return Window(None, end), "full_snapshot: every row before the window end"
    if watermark is None and pipeline.initial_load == "snapshot":
        return Window(None, end), "initial load: the pipeline has no sync state, so its first run is a snapshot"
    assert start is not None and end is not None
    start = min(start, end) - timedelta(minutes=pipeline.lookback_minutes)
    if late_horizon is not None and late_horizon < start:
        log.info("%s: re-reading from late horizon %s (a transaction was still open when it was read)",
                 pipeline.name, late_horizon)
        start, why = late_horizon, why + ", widened back to the late horizon"
    return Window(start, end), why


def plan_batches(conn: psycopg.Connection, pipeline: Pipeline, window: Window,
                 max_batches: int | None = None) -> list[Batch]:
    """Splits a window's rows into keyset batches of at most ``pipeline.batch_size`` rows.

    ``snapshot_batch_size`` for a full snapshot. A window that would need more than ``max_batches``
    batches (Airflow maps at most ``[core] max_map_length`` tasks: 1 024 by default) gets bigger ones
    instead: consecutive batches are merged, so it has at most ``max_batches`` (logged).

    Args:
        conn: Source connection.
        pipeline: The table's configuration.
        window: The run's window.
        max_batches: The most batches (mapped extract tasks) a run may have; ``None``: no bound.

    Returns:
        Batches in keyset order; an empty list when the window has no rows.
    """
    keys = keyset_columns(pipeline, window)
    where, params = window_filter(pipeline.cursor, window, zone=pipeline.cursor_time_zone)
    if window.is_snapshot:
        return key_batches(conn, pipeline, pipeline.snapshot_batch_size, max_batches, where, params)
    query = load_sql(
        "sync/plan_boundaries.sql",
        key_text=text_of(keys),
        keys=idents(keys),
        table=table_ident(pipeline.source),
        window=where,
    )
    with conn.cursor() as cur:
        starts = [tuple(row[:-1]) for row in cur.execute(query, {**params, "batch_size": pipeline.batch_size})]
    conn.commit()
    return tile(at_most(starts, max_batches, pipeline))
