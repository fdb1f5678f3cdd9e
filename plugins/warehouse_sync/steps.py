"""The four steps of a sync run as plain functions: plan, extract, load, reconcile.

Each takes open connections and JSON-friendly arguments, returns JSON-friendly results (what the
DAG passes through XCom) and writes an audit row. The DAG's tasks only open the connections and
call these, so every step runs the same under a unit test, ``dag.test()`` and a real scheduler.
Each step is idempotent: running it twice for the same window leaves the same warehouse.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any, Iterable

import psycopg

from warehouse_sync import audit
from warehouse_sync.catalog import describe_source
from warehouse_sync.config import Pipeline, storage_root
from warehouse_sync.extract import extract_batch
from warehouse_sync.merge import load_files
from warehouse_sync.planner import Batch, Window, plan_batches, wait_for_inflight
from warehouse_sync.diff import locate
from warehouse_sync.reconcile import raise_on_drift, reconcile
from warehouse_sync.repair import RepairRefused, repair

log = logging.getLogger(__name__)
STAGING_ENV = "WAREHOUSE_SYNC_STAGING_ROOT"


def staging_root() -> Any:
    """The staging root: ``$WAREHOUSE_SYNC_STAGING_ROOT`` or ``<repo>/.staging`` (an ``ObjectStoragePath``)."""
    return storage_root(STAGING_ENV, ".staging")


def effective_window(
    pipeline: Pipeline, interval_start: datetime, interval_end: datetime, late_horizon: datetime | None,
    full_snapshot: bool,
) -> Window:
    """The cursor window a run reads: its data interval, widened back by the lookback and by a
    pending late horizon; unbounded below for a full snapshot."""
    if full_snapshot:
        return Window(None, interval_end)
    start = interval_start - timedelta(minutes=pipeline.lookback_minutes)
    if late_horizon is not None and late_horizon < start:
        log.info("%s: re-reading from late horizon %s (a transaction was still open when it was read)",
                 pipeline.name, late_horizon)
        start = late_horizon
    return Window(start, interval_end)


def plan(
    source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline,
    interval_start: datetime, interval_end: datetime, run_id: str, full_snapshot: bool = False,
) -> dict[str, Any]:
    """Validates the source, settles late commits and splits the window into keyset batches.

    Returns:
        ``{"window": {...}, "batches": [{"batch": {...}}, ...], "own_horizon": iso str | None}``:
        the ``batches`` list is what the extract task is expanded over.

    Raises:
        TableNotFound, UnknownColumn, PrimaryKeyError: The source does not fit the config.
    """
    started = time.monotonic()
    describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    audit.ensure_meta(warehouse)
    state = audit.read_state(warehouse, pipeline.name)
    window = effective_window(pipeline, interval_start, interval_end, state.late_horizon, full_snapshot)
    own_horizon = wait_for_inflight(source, interval_end, pipeline.settle_timeout_seconds)
    if own_horizon is not None:
        audit.hold_late_horizon(warehouse, pipeline.name, own_horizon)
    batches = plan_batches(source, pipeline, window)
    audit.record(warehouse, pipeline.name, run_id, "plan", window, seconds=time.monotonic() - started,
                 detail={"batches": len(batches), "late_horizon": own_horizon.isoformat() if own_horizon else None})
    log.info("%s %s: %d batch(es) of <= %d rows", pipeline.source, window, len(batches), pipeline.batch_size)
    return {
        "window": window.to_dict(),
        "batches": [{"batch": b.to_dict()} for b in batches],
        "own_horizon": own_horizon.isoformat() if own_horizon else None,
    }


def extract(
    source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline,
    window: dict[str, Any], batch: dict[str, Any], run_id: str, root: Any = None,
) -> dict[str, Any]:
    """Writes one batch to its Parquet file; returns ``{"path", "rows", "bytes", "seconds", "batch_index"}``."""
    win, bat = Window.from_dict(window), Batch.from_dict(batch)
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    result = extract_batch(source, pipeline, columns, win, bat, root if root is not None else staging_root())
    audit.record(warehouse, pipeline.name, run_id, "extract", win, rows=result.rows, bytes_=result.bytes,
                 seconds=result.seconds, batch_index=bat.index, detail={"path": result.path})
    return result.to_dict()


def _as_path(path: str) -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(path if "://" in path else f"file://{path}")


def load(
    source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline,
    window: dict[str, Any], files: Iterable[dict[str, Any]], run_id: str, own_horizon: str | None = None,
    open_path: Any = None,
) -> dict[str, Any]:
    """COPYs the window's files into staging and merges them into the target in one transaction.

    Returns:
        ``{"files", "staged", "merged", "unchanged", "seconds"}`` (rows and seconds).
    """
    win = Window.from_dict(window)
    files = sorted(files, key=lambda f: f["batch_index"])
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    to_path = open_path or _as_path
    try:
        result = load_files(warehouse, pipeline, columns, [to_path(f["path"]) for f in files], run_id,
                            snapshot=win.start is None)
    except Exception as exc:
        warehouse.rollback()
        audit.record(warehouse, pipeline.name, run_id, "load", win, status="failed", detail={"error": str(exc)})
        raise
    audit.release_late_horizon(
        warehouse, pipeline.name, win, datetime.fromisoformat(own_horizon) if own_horizon else None
    )
    summary = {"files": len(files), "staged": result.staged, "merged": result.merged,
               "unchanged": result.unchanged, "seconds": round(result.seconds, 3)}
    audit.record(warehouse, pipeline.name, run_id, "load", win, rows=result.merged,
                 bytes_=sum(int(f["bytes"]) for f in files), seconds=result.seconds, detail=summary)
    return summary


def validate(warehouse: psycopg.Connection, warehouse_url: str, pipeline: Pipeline, window: dict[str, Any],
             run_id: str) -> dict[str, Any]:
    """Runs the pipeline's expectation suite on the window's rows (see :mod:`warehouse_sync.quality`).

    Returns:
        ``{"checks", "failed", "warned", "docs", "seconds"}``.

    Raises:
        DataQualityFailed: A ``fail``-severity expectation failed (results and Data Docs are saved first).
    """
    from warehouse_sync.quality import DataQualityFailed, validate as run_validation

    win = Window.from_dict(window)
    audit.ensure_meta(warehouse)
    try:
        summary = run_validation(warehouse, warehouse_url, pipeline, win, run_id, pipeline.dag_id)
    except DataQualityFailed as exc:
        audit.record(warehouse, pipeline.name, run_id, "validate", win, status="failed", detail={"error": str(exc)})
        raise
    audit.record(warehouse, pipeline.name, run_id, "validate", win, seconds=summary["seconds"],
                 status="warn" if summary["warned"] else "ok", detail=summary)
    return summary


def locate_and_repair(
    source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline, columns: list[Any],
    as_of: datetime, run_id: str, scope: str,
) -> dict[str, Any]:
    """Finds every differing key (rows with cursor < ``as_of``), repairs within the ceiling, records
    the outcome in ``warehouse_sync.drift_history``.

    Returns:
        :meth:`DiffResult.summary` plus ``repaired`` (rows written).

    Raises:
        RepairRefused: Too much drift to repair (recorded, nothing changed).
    """
    diff = locate(source, warehouse, pipeline, columns, as_of)
    try:
        repaired = repair(source, warehouse, pipeline, columns, diff, run_id).total if diff.total else 0
    except RepairRefused:
        warehouse.rollback()
        audit.record_drift(warehouse, pipeline.name, run_id, scope, as_of, diff, 0, refused=True)
        raise
    audit.record_drift(warehouse, pipeline.name, run_id, scope, as_of, diff, repaired, refused=False)
    return {**diff.summary(), "repaired": repaired}


def _record_comparisons(warehouse: psycopg.Connection, pipeline: Pipeline, run_id: str, comparisons: list[Any],
                        step_suffix: str = "") -> None:
    for c in comparisons:
        status = "deferred" if c.deferred else ("ok" if c.matches else "drift")
        audit.record(warehouse, pipeline.name, run_id, f"reconcile_{c.scope}{step_suffix}", c.window,
                     status=status, rows=c.source.rows, seconds=c.seconds, detail=c.to_dict())


def check(
    source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline,
    window: dict[str, Any], run_id: str,
) -> dict[str, Any]:
    """Reconciles the window and (if configured) the whole table; on drift, locates every differing
    key, repairs it (missing, changed, deleted at source) and checks again.

    Returns:
        ``{"comparisons": [...], "drift": {...} | None}``.

    Raises:
        RepairRefused: More drift than the repair ceiling.
        DriftDetected: Drift remains after repair (names table, window, counts, checksums).
    """
    win = Window.from_dict(window)
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    comparisons = reconcile(source, warehouse, pipeline, columns, win, pipeline.reconcile_full_table)
    _record_comparisons(warehouse, pipeline, run_id, comparisons)
    drift = None
    if not all(c.matches for c in comparisons):
        drift = locate_and_repair(source, warehouse, pipeline, columns, win.end, run_id, "window")
        comparisons = reconcile(source, warehouse, pipeline, columns, win, pipeline.reconcile_full_table)
        _record_comparisons(warehouse, pipeline, run_id, comparisons, "_after_repair")
    raise_on_drift(pipeline, comparisons)
    return {"comparisons": [c.to_dict() for c in comparisons], "drift": drift}


def reconcile_table(
    source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline, as_of: datetime | None,
    run_id: str,
) -> dict[str, Any]:
    """Whole-table reconcile with repair, as of ``as_of`` capped at the pipeline's high watermark
    (rows past it are not loaded yet, so they are in flight, not drift); ``None`` means the watermark.

    Returns:
        ``{"as_of", "drift": {...}, "comparison": {...}}``.

    Raises:
        RepairRefused: More drift than the repair ceiling.
        DriftDetected: Drift remains after repair.
    """
    audit.ensure_meta(warehouse)
    state = audit.read_state(warehouse, pipeline.name)
    if state.high_watermark is None:
        raise RuntimeError(f"{pipeline.name}: nothing loaded yet (no high watermark); run {pipeline.dag_id} first")
    as_of = state.high_watermark if as_of is None else min(as_of, state.high_watermark)
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    drift = locate_and_repair(source, warehouse, pipeline, columns, as_of, run_id, "table")
    comparisons = reconcile(source, warehouse, pipeline, columns, Window(None, as_of), full_table=False)
    _record_comparisons(warehouse, pipeline, run_id, comparisons, "_daily")
    raise_on_drift(pipeline, comparisons)
    return {"as_of": as_of.isoformat(), "drift": drift, "comparison": comparisons[0].to_dict()}
