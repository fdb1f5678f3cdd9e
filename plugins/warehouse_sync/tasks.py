"""The task bodies the DAG file wires: plan, extract, load, reconcile, validate, daily reconcile.

Each takes open connections and JSON-friendly values, returns a JSON-friendly result (what the
DAG passes through XCom) and writes its audit row. The DAG's tasks only open the connections and
call these, so every step runs the same under a test, ``dag.test()`` and a real scheduler. Each is
idempotent: running it twice for the same window leaves the same warehouse.

Where each behaviour lives, one hop from here: :mod:`.sync.plan` (windows, keyset batches, late
commits), :mod:`.sync.extract` (pages to Parquet), :mod:`.sync.load` (COPY and the version-guarded
merge, the target's DDL), :mod:`.sync.schema` (what a source schema change does),
:mod:`.reconcile.loop` (compare → locate → repair → compare → alert), :mod:`.quality.validate`
(Great Expectations), :mod:`.bookkeeping` (audit, sync state, schema history).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterable, Iterator

import psycopg

from warehouse_sync.bookkeeping import audit, state
from warehouse_sync.bookkeeping.migrate import ensure_tables
from warehouse_sync.cdc import run as cdc
from warehouse_sync.cdc.changes import TruncateSeen
from warehouse_sync.cdc.slot import CdcUnavailable, SlotLost
from warehouse_sync.config import SYNC_SCHEDULE, ConfigError, Pipeline
from warehouse_sync.db.catalog import PrimaryKeyError, TableNotFound, UnknownColumn, describe_source
from warehouse_sync.model import Batch, RunStart, Window
from warehouse_sync.quality.validate import DataQualityFailed, validate as run_validation
from warehouse_sync.reconcile import NothingLoaded, RepairRefused, loop
from warehouse_sync.reconcile.locate import UnsupportedKey
from warehouse_sync.storage import as_path, staging_root
from warehouse_sync.sync.extract import extract_batch
from warehouse_sync.sync import snapshot
from warehouse_sync.sync.load import SchemaChangeHandler, load_files
from warehouse_sync.sync.plan import plan_batches, run_window, wait_for_inflight
from warehouse_sync.sync.schema import SchemaChanged
from warehouse_sync.sync.staging import remove_expired

log = logging.getLogger(__name__)


# Errors that a retry cannot mend: the task fails at once (no retries) and alerts once.
DETERMINISTIC_ERRORS: tuple[type[Exception], ...] = (
    ConfigError, TableNotFound, UnknownColumn, PrimaryKeyError, SchemaChanged, RepairRefused, UnsupportedKey,
    NothingLoaded, DataQualityFailed, CdcUnavailable, SlotLost, cdc.NoPastWindows, TruncateSeen,
)


@contextmanager
def fail_fast() -> Iterator[None]:
    """Re-raises a deterministic error (:data:`DETERMINISTIC_ERRORS`) as ``AirflowFailException``, so
    Airflow fails the task without retrying it; lost connections, timeouts, serialization failures
    and deadlocks propagate as they are and keep their retries."""
    try:
        yield
    except DETERMINISTIC_ERRORS as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def plan(
    source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline, run: RunStart, run_id: str,
    schedule: str = SYNC_SCHEDULE,
) -> dict[str, Any]:
    """Validates the source, decides the run's window, settles late commits, splits it into keyset batches.

    Args:
        run: How the run started (its Airflow context values); see :func:`.sync.plan.run_window`.
        schedule: The DAG's cron expression (UTC), for manual runs with a logical date.

    Returns:
        ``{"window": {...}, "why": str, "batches": [{"batch": {...}}, ...], "own_horizon": iso str | None}``:
        the ``batches`` list is what the extract task is expanded over.

    Raises:
        TableNotFound, UnknownColumn, PrimaryKeyError: The source does not fit the config.
        CdcUnavailable, SlotLost, NoPastWindows: ``mode: cdc`` only (:func:`.cdc.run.plan`).
    """
    if pipeline.mode == "cdc":
        return cdc.plan(source, warehouse, pipeline, run, run_id)
    started = time.monotonic()
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    ensure_tables(warehouse)
    known = state.read_state(warehouse, pipeline.name)
    window, why = run_window(pipeline, schedule, run, known.high_watermark, known.late_horizon)
    own_horizon = wait_for_inflight(source, window.end, pipeline.settle_timeout_seconds)
    if own_horizon is not None:
        state.hold_late_horizon(warehouse, pipeline.name, own_horizon)
    batches = plan_batches(source, pipeline, window)
    build = snapshot.prepare(warehouse, pipeline, columns, run_id) if window.is_snapshot and batches else None
    audit.record(warehouse, pipeline.name, run_id, "plan", window, seconds=time.monotonic() - started,
                 detail={"batches": len(batches), "why": why, "build_table": str(build) if build else None,
                         "late_horizon": own_horizon.isoformat() if own_horizon else None})
    log.info("%s: window %s (%s): %d batch(es) of <= %d rows", pipeline.source, window, why, len(batches),
             pipeline.snapshot_batch_size if window.is_snapshot else pipeline.batch_size)
    return {
        "window": window.to_dict(),
        "why": why,
        "batches": [{"batch": b.to_dict()} for b in batches],
        "own_horizon": own_horizon.isoformat() if own_horizon else None,
    }


def extract(
    source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline,
    window: dict[str, Any], batch: dict[str, Any], run_id: str, root: Any = None,
) -> dict[str, Any]:
    """Writes one batch to its Parquet file under ``root`` (default: the staging root).

    In a snapshot into a new target, the batch is also copied into the run's build table
    (:mod:`.sync.snapshot`).

    Returns:
        ``{"path", "rows", "bytes", "seconds", "batch_index"}`` (path as a URI; rows, bytes, seconds).
    """
    if pipeline.mode == "cdc":
        return cdc.extract(source, warehouse, pipeline, window, batch, run_id,
                           root if root is not None else staging_root())
    win, bat = Window.from_dict(window), Batch.from_dict(batch)
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    build = snapshot.build_for(warehouse, pipeline, run_id) if win.is_snapshot else None
    warehouse.commit()
    result = extract_batch(source, pipeline, columns, win, bat, root if root is not None else staging_root(),
                           warehouse=warehouse if build else None, build=build)
    audit.record(warehouse, pipeline.name, run_id, "extract", win, rows=result.rows, bytes_=result.bytes,
                 seconds=result.seconds, batch_index=bat.index, detail={"path": result.path})
    return result.to_dict()


def load(
    source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline,
    window: dict[str, Any], files: Iterable[dict[str, Any]], run_id: str, own_horizon: str | None = None,
    open_path: Any = None, on_schema_change: SchemaChangeHandler | None = None,
) -> dict[str, Any]:
    """COPYs the window's files into staging and merges them into the target in one transaction,
    first applying the source's schema changes the pipeline's ``schema_changes`` policy accepts.

    Args:
        open_path: Turns a file's URI into a readable path (default ``ObjectStoragePath``).
        on_schema_change: Called with the schema changes the load recorded (applied, kept, ignored or
            rejected): ``{"table", "source", "policy", "changes": [...]}``.

    Returns:
        ``{"files", "staged", "merged", "unchanged", "backfilled", "schema_changes", "seconds"}`` (rows,
        the changes recorded, seconds).

    Raises:
        SchemaChanged: The policy rejects a schema change (nothing is written but its history rows).
    """
    if pipeline.mode == "cdc":
        return cdc.load(source, warehouse, pipeline, window, files, run_id, own_horizon, open_path or as_path,
                        on_schema_change)
    win = Window.from_dict(window)
    files = sorted(files, key=lambda f: f["batch_index"])
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    to_path = open_path or as_path
    try:
        result = load_files(warehouse, pipeline, columns, [to_path(f["path"]) for f in files], run_id,
                            snapshot=win.is_snapshot, source=source, on_schema_change=on_schema_change)
    except Exception as exc:
        warehouse.rollback()
        audit.record(warehouse, pipeline.name, run_id, "load", win, status="failed", detail={"error": str(exc)})
        raise
    state.release_late_horizon(
        warehouse, pipeline.name, win, datetime.fromisoformat(own_horizon) if own_horizon else None
    )
    summary = {"files": len(files), "staged": result.staged, "merged": result.merged,
               "unchanged": result.unchanged, "backfilled": result.backfilled,
               "schema_changes": [c.to_dict() for c in result.schema_changes], "seconds": round(result.seconds, 3)}
    audit.record(warehouse, pipeline.name, run_id, "load", win, rows=result.merged,
                 bytes_=sum(int(f["bytes"]) for f in files), seconds=result.seconds, detail=summary)
    return summary


def reconcile(
    source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline,
    window: dict[str, Any], run_id: str, on_drift: loop.DriftHandler | None = None,
) -> dict[str, Any]:
    """The sync run's reconcile (:func:`warehouse_sync.reconcile.loop.reconcile_window`).

    Returns:
        :meth:`Reconciliation.to_dict`: ``{"scope", "as_of", "comparisons": [...], "drift": {...} | None}``.

    Raises:
        RepairRefused: More drift than the repair ceiling.
        DriftDetected: Drift remains after repair.
    """
    return loop.reconcile_window(source, warehouse, pipeline, Window.from_dict(window), run_id, on_drift).to_dict()


def reconcile_table(
    source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline, as_of: datetime | None,
    run_id: str, on_drift: loop.DriftHandler | None = None,
) -> dict[str, Any]:
    """The daily whole-table reconcile (:func:`warehouse_sync.reconcile.loop.reconcile_table`).

    Returns:
        :meth:`Reconciliation.to_dict`; in CDC mode also ``"cdc"``: the slot's health and alerts
        (:func:`.cdc.run.record_health`).

    Raises:
        NothingLoaded: The pipeline has not loaded anything yet.
        RepairRefused: More drift than the repair ceiling.
        DriftDetected: Drift remains after repair.
    """
    ensure_tables(warehouse)
    # CDC mode: a paused sync DAG's slot still keeps WAL; measure it daily, before anything can fail
    health = cdc.record_health(source, warehouse, pipeline, run_id) if pipeline.mode == "cdc" else None
    result = loop.reconcile_table(source, warehouse, pipeline, as_of, run_id, on_drift).to_dict()
    return {**result, "cdc": health} if health is not None else result


def validate(warehouse: psycopg.Connection, warehouse_url: str, pipeline: Pipeline, window: dict[str, Any],
             run_id: str) -> dict[str, Any]:
    """Runs the pipeline's expectation suite on the window's rows (see :mod:`warehouse_sync.quality.validate`).

    Returns:
        ``{"expectations", "failed", "warned", "docs", "seconds"}``.

    Raises:
        DataQualityFailed: A ``fail``-severity expectation failed (results and Data Docs are saved first).
    """
    win = Window.from_dict(window)
    ensure_tables(warehouse)
    try:
        summary = run_validation(warehouse, warehouse_url, pipeline, win, run_id, pipeline.dag_id)
    except DataQualityFailed as exc:
        audit.record(warehouse, pipeline.name, run_id, "validate", win, status="failed", detail={"error": str(exc)})
        raise
    audit.record(warehouse, pipeline.name, run_id, "validate", win, seconds=summary["seconds"],
                 status="warn" if summary["warned"] else "ok", detail=summary)
    return summary


def clean_staging(warehouse: psycopg.Connection, pipeline: Pipeline, run_id: str, root: Any = None,
                  now: datetime | None = None) -> dict[str, Any]:
    """Removes the staged files of windows older than ``pipeline.staging_retention_days`` and records the size left.

    See :func:`warehouse_sync.sync.staging.remove_expired`. Writes one audit row, step
    ``clean_staging``: rows = files removed, bytes = bytes removed, window ``[-inf, cutoff)``,
    status ``warn`` if a folder could not be removed (it is kept and named), detail
    ``{"kept_bytes", "kept_files", "removed_windows", "retention_days", "errors"}``.

    Args:
        root: Staging root (default: the staging root setting).
        now: The current time (timezone-aware; default: the clock).

    Returns:
        :meth:`StagingCleanup.to_dict`: cutoff, removed windows, files and bytes, kept files and bytes.
    """
    started = time.monotonic()
    cleanup = remove_expired(root if root is not None else staging_root(), pipeline.name,
                             pipeline.staging_retention_days, now)
    ensure_tables(warehouse)
    audit.record(warehouse, pipeline.name, run_id, "clean_staging", Window(None, cleanup.cutoff),
                 rows=cleanup.removed_files, bytes_=cleanup.removed_bytes, seconds=time.monotonic() - started,
                 status="warn" if cleanup.errors else "ok",
                 detail={"kept_bytes": cleanup.kept_bytes, "kept_files": cleanup.kept_files,
                         "removed_windows": list(cleanup.removed_windows),
                         "retention_days": cleanup.retention_days, "errors": list(cleanup.errors)})
    return cleanup.to_dict()
