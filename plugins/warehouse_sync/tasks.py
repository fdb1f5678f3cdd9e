"""The task bodies the DAG file wires: plan, extract, load, reconcile, validate; daily reconcile, health, clean_staging.

Each that reads the source takes the :class:`~warehouse_sync.run.Run` (pipeline, source, warehouse,
run id; validate and clean_staging take the warehouse alone) and typed values
(:mod:`warehouse_sync.model`), returns a typed result (the DAG passes its ``to_dict()`` form through
XCom), and writes its audit row. The sync mode is chosen here, once per task
(:func:`warehouse_sync.modes.mode_for`); no task body tests it. Audit rows, failure handling and the
release of the late horizon after a load are done here, the same for both modes. The DAG's tasks
only open the connections and call these, so every step runs the same under a test, ``dag.test()``
and a real scheduler. Each is idempotent: running it twice for the same plan leaves the same
warehouse.

Where each behaviour lives, one hop from here: :mod:`.modes` (the two modes: :mod:`.sync.mode` for
cursor windows in keyset batches, :mod:`.cdc.mode` for a replication slot), :mod:`.target` (what
both write through: schema decisions and DDL, bulk COPY, staged files), :mod:`.reconcile.loop`
(compare → locate → repair → compare → alert), :mod:`.quality.validate` (Great Expectations),
:mod:`.bookkeeping` (audit, sync state, schema history).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import psycopg

from warehouse_sync import metrics
from warehouse_sync.bookkeeping import audit, state
from warehouse_sync.bookkeeping.migrate import ensure_tables
from warehouse_sync.cdc.changes import TruncateSeen
from warehouse_sync.cdc.mode import NoPastWindows
from warehouse_sync.cdc.slot import CdcUnavailable, SlotLost
from warehouse_sync.config import ConfigError, Pipeline
from warehouse_sync.db.catalog import PrimaryKeyError, TableNotFound, UnknownColumn, UnusableCursor
from warehouse_sync.model import Batch, Extracted, Health, Loaded, Plan, RunStart, Window
from warehouse_sync.modes import mode_for
from warehouse_sync.quality.validate import DataQualityFailed
from warehouse_sync.quality.validate import validate as run_validation
from warehouse_sync.reconcile import NothingLoaded, RepairRefused, loop
from warehouse_sync.reconcile.locate import UnsupportedKey
from warehouse_sync.run import Run
from warehouse_sync.storage import as_path, staging_root
from warehouse_sync.sync.plan import NullableCursor
from warehouse_sync.target.ddl import SchemaChangeHandler
from warehouse_sync.target.schema import SchemaChanged
from warehouse_sync.target.staging import remove_expired

log = logging.getLogger(__name__)


# Errors that a retry cannot mend: the task fails at once (no retries) and alerts once.
DETERMINISTIC_ERRORS: tuple[type[Exception], ...] = (
    ConfigError, TableNotFound, UnknownColumn, PrimaryKeyError, SchemaChanged, RepairRefused, UnsupportedKey,
    NothingLoaded, DataQualityFailed, CdcUnavailable, SlotLost, NoPastWindows, TruncateSeen, NullableCursor,
    UnusableCursor,
)


@contextmanager
def fail_fast() -> Iterator[None]:
    """Re-raises a deterministic error (:data:`DETERMINISTIC_ERRORS`) as ``AirflowFailException``.

    Airflow then fails the task without retrying it; lost connections, timeouts, serialization failures and
    deadlocks propagate as they are and keep their retries.
    """
    try:
        yield
    except DETERMINISTIC_ERRORS as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


@contextmanager
def _audited_failure(run: Run, step: str, window: Window) -> Iterator[None]:
    """On an error: rolls the warehouse back, records a ``failed`` audit row naming the error, re-raises."""
    try:
        yield
    except Exception as exc:
        run.warehouse.rollback()
        run.record(step, window, status="failed", detail={"error": str(exc)})
        raise


def plan(run: Run, start: RunStart, schedule: str | None = None) -> Plan:
    """Validates the source, decides the run's window, settles late commits, splits it into batches.

    Args:
        run: The pipeline, its two connections and the run id.
        start: How the run started (its Airflow context values); see :func:`.sync.plan.run_window`.
        schedule: The DAG's cron expression (UTC), for manual runs with a logical date; ``None``
            (default): the pipeline's own (:attr:`Pipeline.schedule_cron`).

    Returns:
        The plan (XCom ``plan``); :meth:`Plan.expand` is what the extract task is mapped over. Its audit
        row has status ``warn`` and ``detail.warnings`` when the plan could not make something safe
        (late commits it cannot see or re-read); ``alerts`` are for the DAG's plan task to send.

    Raises:
        TableNotFound, UnknownColumn, PrimaryKeyError, NullableCursor: The source does not fit the config.
        CdcUnavailable, SlotLost, NoPastWindows: ``mode: cdc`` only (:class:`.cdc.mode.CdcMode`).
    """
    ensure_tables(run.warehouse)
    planned = mode_for(run.pipeline, schedule).plan(run, start)
    run.record("plan", planned.window, seconds=planned.seconds, status="warn" if planned.warnings else "ok", detail={
        "batches": len(planned.batches), "why": planned.why,
        "late_horizon": planned.late_horizon.isoformat() if planned.late_horizon else None,
        **planned.facts, "phases": planned.phases, "warnings": list(planned.warnings)})
    return planned


def extract(run: Run, planned: Plan, batch: Batch, root: Any = None) -> Extracted:
    """Stages one batch as Parquet files under ``root`` (default: the staging root).

    Returns:
        The staged files, rows, seconds and phases.
    """
    extracted = mode_for(run.pipeline).extract(run, planned, batch, root if root is not None else staging_root())
    run.record("extract", planned.window, rows=extracted.rows, bytes_=extracted.bytes, seconds=extracted.seconds,
               batch_index=batch.index, detail={"files": [f.path for f in extracted.files], **extracted.facts,
                                                "phases": extracted.phases})
    return extracted


def load(run: Run, planned: Plan, extracted: Sequence[Extracted], open_path: Callable[[str], Any] | None = None,
         on_schema_change: SchemaChangeHandler | None = None) -> Loaded:
    """Merges the window's staged files into the target (one transaction, version-guarded).

    Then releases the late horizon, and records the mode's health (CDC: the slot), whose alerts the result
    carries.

    Args:
        run: The pipeline, its two connections and the run id.
        planned: The run's plan: its window and late horizon.
        extracted: One result per batch, in batch order: the staged files.
        open_path: Turns a file's URI into a readable path (default ``ObjectStoragePath``).
        on_schema_change: Called with the schema changes the load recorded (applied, kept, ignored or
            rejected): ``{"table", "source", "policy", "changes": [...]}``.

    Raises:
        SchemaChanged: The policy rejects a schema change (nothing is written but its history rows).
    """
    mode = mode_for(run.pipeline)
    with _audited_failure(run, "load", planned.window):
        loaded = mode.load(run, planned, extracted, open_path or as_path, on_schema_change)
    state.release_late_horizon(run.warehouse, run.pipeline.name, planned.window, planned.late_horizon)
    health = mode.health(run, loaded)
    if health is not None:
        _record_health(run, planned.window, health)
        metrics.emit_health(run.pipeline.name, health)
        loaded = replace(loaded, alerts=health.alerts)
    run.record("load", planned.window, rows=loaded.merged, bytes_=loaded.bytes, seconds=loaded.seconds,
               detail=loaded.to_dict())
    metrics.emit_load(run.pipeline.name, loaded)
    fresh = metrics.measure_freshness(run, planned.window)
    return replace(loaded, alerts=(*loaded.alerts, *fresh.alerts))


def _record_health(run: Run, window: Window, health: Health) -> None:
    run.record(health.step, window, rows=health.rows, bytes_=health.bytes, status="warn" if health.alerts else "ok",
               detail=health.to_dict())


def health(run: Run) -> Health:
    """The mode's health on its own (the daily reconcile DAG's ``health`` task).

    It runs there so that a paused sync DAG whose replication slot keeps WAL still shows on the data-quality page
    and alerts.

    Also measures the target's freshness (:func:`warehouse_sync.metrics.measure_freshness`), so that a pipeline
    whose runs stopped still alerts once past ``max_staleness_minutes``.

    Returns:
        The mode's health recorded, its ``alerts`` the thresholds crossed plus a freshness alert (cursor mode,
        which holds nothing at the source: the freshness measurement itself).
    """
    ensure_tables(run.warehouse)
    window = Window(None, datetime.now(timezone.utc))
    measured = mode_for(run.pipeline).health(run)
    if measured is not None:
        _record_health(run, window, measured)
        metrics.emit_health(run.pipeline.name, measured)
    fresh = metrics.measure_freshness(run, window)
    return fresh if measured is None else replace(measured, alerts=(*measured.alerts, *fresh.alerts))


def _pending_keys(run: Run) -> loop.PendingKeys:
    """The mode's keys of changes committed at the source and not applied yet: asked once, when first needed."""
    mode = mode_for(run.pipeline)
    known: list[set[tuple[str, ...]]] = []

    def pending() -> set[tuple[str, ...]]:
        if not known:
            known.append(mode.pending_keys(run))
        return known[0]
    return pending


def reconcile(run: Run, planned: Plan, on_drift: loop.DriftHandler | None = None) -> loop.Reconciliation:
    """The sync run's reconcile (:func:`warehouse_sync.reconcile.loop.reconcile_window`).

    Raises:
        RepairRefused: More drift than the repair ceiling.
        DriftDetected: Drift remains after repair.
    """
    result = loop.reconcile_window(run, planned.window, on_drift, pending=_pending_keys(run))
    metrics.emit_reconcile(run.pipeline.name, result.drift)
    return result


def reconcile_table(run: Run, as_of: datetime | None = None,
                    on_drift: loop.DriftHandler | None = None) -> loop.Reconciliation:
    """The daily whole-table reconcile (:func:`warehouse_sync.reconcile.loop.reconcile_table`).

    Raises:
        NothingLoaded: The pipeline has not loaded anything yet.
        RepairRefused: More drift than the repair ceiling.
        DriftDetected: Drift remains after repair.
    """
    ensure_tables(run.warehouse)
    result = loop.reconcile_table(run, as_of, on_drift, pending=_pending_keys(run))
    metrics.emit_reconcile(run.pipeline.name, result.drift)
    return result


def validate(warehouse: psycopg.Connection, warehouse_url: str, pipeline: Pipeline, planned: Plan,
             run_id: str, on_summary: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Runs the pipeline's expectation suite on the window's rows (see :mod:`warehouse_sync.quality.validate`).

    Only the warehouse is read (``warehouse_url`` is its SQLAlchemy URL, for Great Expectations).
    ``on_summary`` gets the summary once the results are saved, also before a failure is raised.

    Returns:
        ``{"expectations", "failed", "warned", "docs", "seconds"}``.

    Raises:
        DataQualityFailed: A ``fail``-severity expectation failed (results and Data Docs are saved first).
    """
    window = planned.window
    ensure_tables(warehouse)
    try:
        summary = run_validation(warehouse, warehouse_url, pipeline, window, run_id, pipeline.dag_id, on_summary)
    except DataQualityFailed as exc:
        audit.record(warehouse, pipeline.name, run_id, "validate", window, status="failed", detail={"error": str(exc)})
        raise
    audit.record(warehouse, pipeline.name, run_id, "validate", window, seconds=summary["seconds"],
                 status="warn" if summary["warned"] else "ok", detail=summary)
    return summary


def clean_staging(warehouse: psycopg.Connection, pipeline: Pipeline, run_id: str, root: Any = None,
                  now: datetime | None = None) -> dict[str, Any]:
    """Removes the staged files of windows older than ``pipeline.staging_retention_days`` and records the size left.

    See :func:`warehouse_sync.target.staging.remove_expired`. Writes one audit row, step
    ``clean_staging``: rows = files removed, bytes = bytes removed, window ``[-inf, cutoff)``,
    status ``warn`` if a folder could not be removed (it is kept and named), detail
    ``{"kept_bytes", "kept_files", "removed_windows", "retention_days", "errors"}``.

    Args:
        warehouse: Warehouse connection (the audit row is written here).
        pipeline: The table's configuration (its name and ``staging_retention_days``).
        run_id: Airflow run id (of the audit row).
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
