"""The audit trail in the warehouse: one row per step of every run, one per located drift.

``warehouse_sync.audit``: plan, each extract batch, load, each comparison, validate (table, run,
window, rows, bytes, seconds, status, detail as JSON). ``warehouse_sync.drift_history``: what a
reconcile located and repaired (scope, segments, missing, extra, changed, repaired, refused,
seconds, sample keys). Rows are committed at once, so a failing task still leaves its trace.

Source row values never enter a row through an error message: PostgreSQL's ``DETAIL: Failing row
contains (…)`` (a NOT NULL or CHECK violation) is cut to ``Failing row contains (values redacted)``
(:func:`warehouse_sync.redact.redact`, also applied to alerts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from warehouse_sync.db.statements import load_sql
from warehouse_sync.model import Window
from warehouse_sync.redact import redact


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
    """Appends one audit row and commits it.

    Args:
        conn: Warehouse connection (left with no open transaction).
        pipeline: Pipeline name.
        run_id: Airflow run id.
        step: ``plan``, ``extract``, ``load``, ``reconcile_window``, ``reconcile_table``, ``validate``, ...
        window: The window the step worked on.
        status: ``ok``, ``failed``, ``drift``, ``deferred`` or ``warn``.
        rows: Rows the step read or wrote.
        bytes_: Bytes written (extract, load).
        seconds: Wall time of the step (seconds).
        batch_index: The extract batch, if any.
        detail: JSON-friendly details (source row values in error messages are redacted:
            :func:`~warehouse_sync.redact.redact`).
    """
    with conn.transaction():
        conn.execute(load_sql("bookkeeping/record_audit.sql"), {
            "pipeline": pipeline, "run_id": run_id, "step": step, "batch_index": batch_index,
            "window_start": window.start, "window_end": window.end, "rows": rows, "bytes": bytes_,
            "seconds": seconds, "status": status, "detail": Jsonb(redact(detail or {})),
        })
    conn.commit()


def noted_in_plan(conn: psycopg.Connection, pipeline: str, note: str, blocker: str, since: datetime) -> bool:
    """Whether an earlier plan of ``pipeline`` recorded ``detail[note]["blocker"] == blocker`` (an alert sent once).

    Args:
        conn: Warehouse connection (left with no open transaction).
        pipeline: Pipeline name.
        note: The plan detail's key (``late_horizon_capped``).
        blocker: What the note is about, the same on every run while it lasts.
        since: Only plans of windows ending at or after this instant (UTC) are read.
    """
    (found,) = conn.execute(load_sql("bookkeeping/noted_in_plan.sql"), {  # type: ignore[misc]
        "pipeline": pipeline, "note": note, "blocker": blocker, "since": since}).fetchone()
    conn.commit()
    return bool(found)


def record_drift(
    conn: psycopg.Connection, pipeline: str, run_id: str, scope: str, as_of: datetime, found: Any,
    repaired: int, refused: bool,
) -> None:
    """Appends a row to ``warehouse_sync.drift_history`` and commits it.

    Args:
        conn: Warehouse connection.
        pipeline: Pipeline name.
        run_id: Airflow run id.
        scope: ``window`` (a sync run) or ``table`` (the daily reconcile).
        as_of: Rows with cursor >= ``as_of`` were in flight (UTC).
        found: What :func:`warehouse_sync.reconcile.locate.locate` returned (a ``Drift``).
        repaired: Rows the repair wrote.
        refused: Whether the repair was refused by the ceiling.
    """
    with conn.transaction():
        conn.execute(load_sql("bookkeeping/record_drift.sql"), {
            "pipeline": pipeline, "run_id": run_id, "scope": scope, "as_of": as_of, "segments": found.segments,
            "missing": len(found.missing), "extra": len(found.extra), "changed": len(found.changed),
            "repaired": repaired, "refused": refused, "seconds": found.seconds, "sample": Jsonb(found.summary()),
        })
    conn.commit()
