"""The CDC mode's task bodies: plan, extract and load of a ``mode: cdc`` pipeline.

:mod:`warehouse_sync.tasks` calls these when ``pipeline.mode == "cdc"``; the DAG's shape and its XCom
values stay those of cursor mode (plan → one mapped extract → load → reconcile, validate).

* **plan** checks ``wal_level``, the source table and the slot, waits out transactions that began
  before now (as cursor mode does, so the run's reconcile sees no late commit), and fixes the run's
  LSN (``pg_current_wal_lsn()``): the run applies exactly the transactions that committed before it.
  Its window is ``[high watermark, plan time)``, which the reconcile and validate tasks use as in
  cursor mode. A first run (no sync state) or ``full_snapshot`` is a *snapshot* run.
* **extract** (one mapped task): a snapshot run creates publication and slot and reads the table in
  the slot's exported snapshot; any other run decodes the slot's changes up to the plan's LSN. Both
  write Parquet files of at most ``slot_chunk_changes`` rows (:mod:`.changes`).
* **load** merges them with the LSN version guard (:mod:`.apply`), then, only after the warehouse
  commit, confirms the slot at the plan's LSN (:func:`.slot.confirm`), raises the watermark and
  records slot health (retained WAL, lag, changes applied) with alerts over the thresholds.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Iterable

import psycopg

from warehouse_sync.bookkeeping import audit, state
from warehouse_sync.bookkeeping.migrate import ensure_tables
from warehouse_sync.cdc import slot as slots
from warehouse_sync.cdc.apply import apply_changes
from warehouse_sync.cdc.changes import read_changes, read_snapshot
from warehouse_sync.config import Pipeline
from warehouse_sync.db.catalog import describe_source
from warehouse_sync.model import RunStart, Window
from warehouse_sync.sync.plan import wait_for_inflight

log = logging.getLogger(__name__)


class NoPastWindows(RuntimeError):
    """A backfill (or a scheduled run of an interval already passed) of a ``mode: cdc`` pipeline: a log
    has no past windows; each run applies every change committed since the last one."""


def plan(source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline, run: RunStart,
         run_id: str) -> dict[str, Any]:
    """Decides what the run reads and fixes its LSN (see the module docstring).

    Returns:
        As :func:`warehouse_sync.tasks.plan`: ``{"window", "why", "batches": [one batch], "own_horizon"}``;
        the batch is ``{"index": 0, "kind": "snapshot" | "changes", "upto_lsn": str | None}``.

    Raises:
        CdcUnavailable: ``wal_level`` is not ``logical``.
        SlotLost: The slot is missing or invalidated after the initial snapshot (message: the way back).
        NoPastWindows: A backfill of a past interval.
    """
    started = time.monotonic()
    slots.check_wal_level(source, pipeline)
    describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    ensure_tables(warehouse)
    known = state.read_state(warehouse, pipeline.name)
    if (not run.manual and run.interval_end is not None and run.interval_start is not None
            and known.high_watermark is not None and not run.full_snapshot
            # a whole interval older than the watermark: a backfill (a late scheduled run still runs)
            and run.interval_end + (run.interval_end - run.interval_start) < known.high_watermark):
        raise NoPastWindows(
            f"pipeline {pipeline.name} has mode: cdc and already applied the log up to {known.high_watermark}; the "
            f"run of interval ending {run.interval_end} is a past window, and a log has no past windows: each run "
            "applies every change committed since the last one. Nothing to backfill (use full_snapshot to reload).")
    health = slots.health(source, pipeline.cdc_slot)
    snapshot = run.full_snapshot or known.high_watermark is None
    if not snapshot and (not health.exists or health.invalidated):
        what = "is missing" if not health.exists else "was invalidated (wal_status lost: the source removed WAL it needed)"
        raise slots.SlotLost(f"pipeline {pipeline.name}: replication slot {pipeline.cdc_slot} {what}, so changes since "
                             f"the last run may be lost. Way back: {slots.resnapshot_path(pipeline)}.")
    _, now = slots.current_lsn(source)
    own_horizon = wait_for_inflight(source, now, pipeline.settle_timeout_seconds)
    slots.log_running_transactions(source)  # lets this run's confirm free WAL at once
    upto_lsn, _ = slots.current_lsn(source)
    window = Window(None if snapshot else known.high_watermark, now)
    why = ("cdc snapshot (first run)" if known.high_watermark is None else
           "cdc snapshot (full_snapshot)" if snapshot else "cdc changes up to " + upto_lsn)
    batch = {"index": 0, "kind": "snapshot" if snapshot else "changes", "upto_lsn": None if snapshot else upto_lsn}
    audit.record(warehouse, pipeline.name, run_id, "plan", window, seconds=time.monotonic() - started,
                 detail={"batches": 1, "why": why, "mode": "cdc", "upto_lsn": upto_lsn,
                         "retained_wal_bytes": health.retained_wal_bytes,
                         "late_horizon": own_horizon.isoformat() if own_horizon else None})
    log.info("%s: %s, window %s", pipeline.name, why, window)
    return {"window": window.to_dict(), "why": why, "batches": [{"batch": batch}],
            "own_horizon": own_horizon.isoformat() if own_horizon else None}


def extract(source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline, window: dict[str, Any],
            batch: dict[str, Any], run_id: str, root: Any) -> dict[str, Any]:
    """Stages the snapshot or the changes up to the plan's LSN (see the module docstring).

    Returns:
        :meth:`StagedChanges.to_dict` plus ``kind``, ``upto_lsn`` (the LSN the load confirms; for a
        snapshot ``None``), ``consistent_point``, ``rows``, ``bytes``, ``batch_index``.
    """
    win = Window.from_dict(window)
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    consistent_point = None
    if batch["kind"] == "snapshot":
        with slots.created_slot(source, pipeline) as created:
            staged = read_snapshot(source, pipeline, columns, created, win, root)
        consistent_point = created.consistent_point
    else:
        staged = read_changes(source, pipeline, batch["upto_lsn"], win, root)
    result = {**staged.to_dict(), "kind": batch["kind"], "upto_lsn": batch["upto_lsn"],
              "consistent_point": consistent_point, "rows": staged.changes,
              "bytes": sum(f["bytes"] for f in staged.files), "batch_index": 0}
    audit.record(warehouse, pipeline.name, run_id, "extract", win, rows=staged.changes, bytes_=result["bytes"],
                 seconds=staged.seconds, batch_index=0,
                 detail={k: result[k] for k in ("kind", "upto_lsn", "consistent_point", "transactions",
                                                 "oldest_commit", "newest_commit")} | {"files": len(staged.files)})
    return result


def load(source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline, window: dict[str, Any],
         extracted: Iterable[dict[str, Any]], run_id: str, own_horizon: str | None, open_path: Any,
         on_schema_change: Any = None) -> dict[str, Any]:
    """Merges the staged files, then confirms the slot, raises the watermark and records slot health.

    Returns:
        ``{"files", "staged", "merged", "schema_changes", "seconds", "slot": {...}, "alerts": [str, ...]}``:
        ``slot`` has ``retained_wal_bytes``, ``lag_seconds`` (the oldest applied change: commit at the
        source to warehouse commit), ``freshest_lag_seconds`` (the newest), ``changes_applied``,
        ``confirmed_lsn``; ``alerts`` the thresholds crossed.
    """
    win = Window.from_dict(window)
    extracted = list(extracted)
    files = [f for e in extracted for f in e["files"]]
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    try:
        result = apply_changes(warehouse, pipeline, columns, [open_path(f["path"]) for f in files], run_id,
                               source=source, on_schema_change=on_schema_change,
                               snapshot=all(e["kind"] == "snapshot" for e in extracted) and bool(extracted))
    except Exception as exc:
        warehouse.rollback()
        audit.record(warehouse, pipeline.name, run_id, "load", win, status="failed", detail={"error": str(exc)})
        raise
    committed = datetime.now(timezone.utc)
    upto = next((e["upto_lsn"] for e in extracted if e.get("upto_lsn")), None)
    moved = slots.confirm(source, pipeline.cdc_slot, upto) if upto else False
    state.release_late_horizon(warehouse, pipeline.name, win, datetime.fromisoformat(own_horizon) if own_horizon else None)
    health = slots.health(source, pipeline.cdc_slot)
    oldest = min((datetime.fromisoformat(e["oldest_commit"]) for e in extracted if e.get("oldest_commit")), default=None)
    newest = max((datetime.fromisoformat(e["newest_commit"]) for e in extracted if e.get("newest_commit")), default=None)
    slot_info = {"retained_wal_bytes": health.retained_wal_bytes, "wal_status": health.wal_status,
                 "lag_seconds": round((committed - oldest).total_seconds(), 3) if oldest else 0.0,
                 "freshest_lag_seconds": round((committed - newest).total_seconds(), 3) if newest else 0.0,
                 "changes_applied": result.merged, "changes_read": result.staged,
                 "confirmed_lsn": health.confirmed_flush_lsn, "slot_moved": moved}
    alerts = threshold_alerts(pipeline, slot_info)
    audit.record(warehouse, pipeline.name, run_id, "cdc_slot", win, rows=result.merged,
                 bytes_=health.retained_wal_bytes, status="warn" if alerts else "ok", detail={**slot_info, "alerts": alerts})
    summary = {"files": len(files), "staged": result.staged, "merged": result.merged,
               "unchanged": result.staged - result.merged, "backfilled": 0,
               "schema_changes": [c.to_dict() for c in result.schema_changes], "seconds": round(result.seconds, 3),
               "slot": slot_info, "alerts": alerts}
    audit.record(warehouse, pipeline.name, run_id, "load", win, rows=result.merged,
                 bytes_=sum(int(f["bytes"]) for f in files), seconds=result.seconds, detail=summary)
    return summary


def threshold_alerts(pipeline: Pipeline, slot_info: dict[str, Any]) -> list[str]:
    """One line per threshold crossed (retained WAL bytes, lag seconds); empty when healthy."""
    lines = []
    if slot_info["retained_wal_bytes"] > pipeline.slot_max_retained_wal_bytes:
        lines.append(f"slot {pipeline.cdc_slot} retains {slot_info['retained_wal_bytes']} bytes of WAL at the source "
                     f"(threshold slot_max_retained_wal_bytes = {pipeline.slot_max_retained_wal_bytes})")
    if slot_info["lag_seconds"] > pipeline.slot_max_lag_seconds:
        lines.append(f"changes reached the warehouse {slot_info['lag_seconds']} s after they committed "
                     f"(threshold slot_max_lag_seconds = {pipeline.slot_max_lag_seconds})")
    return lines


def record_health(source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline,
                  run_id: str) -> dict[str, Any]:
    """Measures the slot outside a sync run (the daily reconcile DAG calls it), so that a paused sync DAG
    whose slot keeps WAL still shows on the data-quality page and alerts.

    Returns:
        ``{"slot": SlotHealth.to_dict(), "alerts": [str, ...]}`` (a missing or invalidated slot alerts).
    """
    health = slots.health(source, pipeline.cdc_slot)
    known = state.read_state(warehouse, pipeline.name)
    info = {"retained_wal_bytes": health.retained_wal_bytes, "wal_status": health.wal_status, "lag_seconds": (
        (datetime.now(timezone.utc) - known.high_watermark).total_seconds() if known.high_watermark else 0.0)}
    alerts = threshold_alerts(pipeline, info)
    if known.high_watermark is not None and (not health.exists or health.invalidated):
        alerts.append(f"replication slot {pipeline.cdc_slot} is {'missing' if not health.exists else 'invalidated'}; "
                      f"way back: {slots.resnapshot_path(pipeline)}")
    audit.record(warehouse, pipeline.name, run_id, "cdc_slot", Window(None, datetime.now(timezone.utc)), rows=0,
                 bytes_=health.retained_wal_bytes, status="warn" if alerts else "ok",
                 detail={**health.to_dict(), **info, "alerts": alerts})
    return {"slot": health.to_dict(), "alerts": alerts}
