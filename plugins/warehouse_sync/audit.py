"""Bookkeeping in the warehouse: the audit trail of every step and the per-pipeline sync state.

``warehouse_sync.audit``: one row per plan, extract batch, load and reconcile (table, run, window,
rows, bytes, seconds, status, detail as JSON). ``warehouse_sync.sync_state``: the high watermark
(greatest window end loaded) and the *late horizon*, the start of the oldest source transaction
still open when a window was read, from which a later run re-reads so that a late commit is
never lost (README, "Late commits").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from warehouse_sync.planner import Window
from warehouse_sync.queries import load_sql


@dataclass(frozen=True)
class SyncState:
    """A pipeline's state: late horizon and high watermark (UTC), each possibly ``None``."""

    late_horizon: datetime | None
    high_watermark: datetime | None


def ensure_meta(conn: psycopg.Connection) -> None:
    """Creates the bookkeeping schema and tables if missing (safe to run concurrently)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('warehouse_sync.ddl'))")
        conn.execute(load_sql("meta_tables.sql"))
    conn.commit()


def record(
    conn: psycopg.Connection,
    pipeline: str,
    run_id: str,
    step: str,
    window: Window,
    *,
    status: str = "ok",
    rows: int = 0,
    bytes_: int = 0,
    seconds: float = 0.0,
    batch_index: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Appends one audit row (committed at once, so a failing task still leaves its trace)."""
    with conn.transaction():
        conn.execute(load_sql("record_audit.sql"), {
            "pipeline": pipeline, "run_id": run_id, "step": step, "batch_index": batch_index,
            "window_start": window.start, "window_end": window.end, "rows": rows, "bytes": bytes_,
            "seconds": seconds, "status": status, "detail": Jsonb(detail or {}),
        })
    conn.commit()


def record_drift(
    conn: psycopg.Connection, pipeline: str, run_id: str, scope: str, as_of: datetime, diff: Any,
    repaired: int, refused: bool,
) -> None:
    """Appends a row to ``warehouse_sync.drift_history`` (what a reconcile found and repaired)."""
    with conn.transaction():
        conn.execute(load_sql("record_drift.sql"), {
            "pipeline": pipeline, "run_id": run_id, "scope": scope, "as_of": as_of, "segments": diff.segments,
            "missing": len(diff.missing), "extra": len(diff.extra), "changed": len(diff.changed),
            "repaired": repaired, "refused": refused, "seconds": diff.seconds, "sample": Jsonb(diff.summary()),
        })
    conn.commit()


def read_state(conn: psycopg.Connection, pipeline: str) -> SyncState:
    """The pipeline's sync state (all ``None`` before its first run)."""
    row = conn.execute(load_sql("read_state.sql"), {"pipeline": pipeline}).fetchone()
    conn.commit()
    return SyncState(*(row or (None, None)))


def hold_late_horizon(conn: psycopg.Connection, pipeline: str, horizon: datetime) -> None:
    """Remembers that source rows from ``horizon`` on may still commit late (keeps the oldest)."""
    with conn.transaction():
        conn.execute(load_sql("hold_late_horizon.sql"), {"pipeline": pipeline, "horizon": horizon})
    conn.commit()


def release_late_horizon(
    conn: psycopg.Connection, pipeline: str, covered: Window, own_horizon: datetime | None
) -> None:
    """After loading ``covered``: drop a late horizon it re-read, keep ``own_horizon``, raise the watermark."""
    with conn.transaction():
        conn.execute(load_sql("release_late_horizon.sql"), {
            "pipeline": pipeline, "covered_from": covered.start, "window_end": covered.end,
            "own_horizon": own_horizon,
        })
    conn.commit()
