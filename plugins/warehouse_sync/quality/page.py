"""The "Data quality" page: what analysts read instead of task logs.

:func:`collect` reads, per pipeline, the latest runs (window, rows loaded, reconciliation, expectations)
from the warehouse's bookkeeping tables (``audit``, ``drift_history``, ``dq_results``, ``schema_history``), and
:func:`render` turns that into one HTML page (Jinja2, autoescaped) with a small SVG chart of rows
per window. No Airflow import here: :mod:`warehouse_sync.quality.app` serves it inside the Airflow
API server, and the tests render it from a plain connection. Runs are listed newest window first
(window end, then the time they ran), so a backfill of old windows never shows as the latest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import psycopg
from jinja2 import Environment, PackageLoader, select_autoescape

from warehouse_sync.config import Pipeline
from warehouse_sync.db.statements import load_sql

RUNS_SHOWN = 8
SCHEMA_CHANGES_SHOWN = 10
TREND_DAYS = 3
FRESHNESS_SHOWN = 24


@dataclass
class RunView:
    """One run as the page shows it."""

    run_id: str
    dag_id: str
    window: str
    rows_loaded: int
    reconciliation: str
    expectations: str
    problem: bool
    time: str = ""


@dataclass
class TableView:
    """One synced table: its runs, expectations, row-count trend, staging size and latest schema changes.

    Its runs, the latest run's expectations, the row-count trend, the staging size, the latest schema
    changes of its source (``{"when", "run_id", "column", "change", "types", "policy", "outcome", "detail"}``,
    newest first), the freshness trend (seconds per measurement), a running load's progress, and
    ``error`` when its warehouse could not be read.
    """

    pipeline: Pipeline
    runs: list[RunView] = field(default_factory=list)
    expectations: list[dict[str, Any]] = field(default_factory=list)
    expectations_window: str = ""
    docs_path: str | None = None
    trend: list[tuple[datetime, int]] = field(default_factory=list)
    staging: str = ""
    cdc_slot: str = ""
    schema_changes: list[dict[str, Any]] = field(default_factory=list)
    freshness: list[tuple[datetime, int]] = field(default_factory=list)
    progress: str = ""
    error: str = ""


def _format_window(start: datetime | None, end: datetime | None) -> str:
    if end is None:
        return "-"
    if start is None:
        return f"everything before {end:%Y-%m-%d %H:%M} UTC (snapshot)"
    end_text = f"{end:%H:%M}" if start.date() == end.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M} – {end_text} UTC"


def _reconciliation_text(reconciled: bool, drift_seen: bool, drift: tuple | None) -> str:
    if drift is not None:
        missing, extra, changed, repaired, refused = drift
        found = f"{missing} missing, {extra} deleted at source, {changed} changed"
        if refused:
            return f"repair refused: {found}"
        if missing or extra or changed:
            return f"drift repaired: {found}; {repaired} rows repaired"
    if not reconciled:
        return "not reconciled yet"
    return "in sync" if not drift_seen else "in sync after re-check (rows were in flight)"


def _expectations_text(rows: list[tuple]) -> tuple[str, bool]:
    if not rows:
        return "not validated", False
    failed = sum(1 for r in rows if not r[6] and r[5] == "fail")
    warned = sum(1 for r in rows if not r[6] and r[5] == "warn")
    if failed:
        return f"{failed} of {len(rows)} expectations failed" + (f", {warned} warnings" if warned else ""), True
    if warned:
        return f"all required expectations passed, {warned} warning{'s' if warned > 1 else ''}", False
    return f"all {len(rows)} expectations passed", False


def _size_text(size: int) -> str:
    """``12.3 MiB``: a size in bytes in binary units, one decimal above bytes."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def staging_text(kept_bytes: int, kept_files: int, retention_days: int | None, measured: datetime | None) -> str:
    """``staging: 12.3 MiB in 40 files, kept 7 days (measured 2026-11-29 03:00 UTC)``.

    Args:
        kept_bytes: Bytes of staged files left by the latest cleanup.
        kept_files: Files left (count).
        retention_days: The retention it applied (days), if recorded.
        measured: When it ran (UTC), if known.
    """
    text = f"staging: {_size_text(kept_bytes)} in {kept_files:,} file{'' if kept_files == 1 else 's'}"
    if retention_days is not None:
        text += f", kept {retention_days} day{'' if retention_days == 1 else 's'}"
    if measured is not None:
        when = measured.astimezone(timezone.utc) if measured.tzinfo else measured
        text += f" (measured {when:%Y-%m-%d %H:%M} UTC)"
    return text


def cdc_slot_text(retained_bytes: int, lag_seconds: float | None, applied: int, status: str,
                  measured: datetime) -> str:
    """``replication slot: retains 12.3 MiB of source WAL, lag 4.2 s, 310 changes applied (measured …)``.

    ``ALERT`` in front when the run crossed a threshold (CDC mode, docs/cdc.md).
    """
    when = measured.astimezone(timezone.utc) if measured.tzinfo else measured
    text = (f"replication slot: retains {_size_text(retained_bytes)} of source WAL, lag {lag_seconds or 0:.1f} s, "
            f"{applied:,} change{'' if applied == 1 else 's'} applied (measured {when:%Y-%m-%d %H:%M} UTC)")
    return ("ALERT " + text) if status == "warn" else text


def time_text(plan: float, extract: float, load: float) -> str:
    """Seconds of a run's plan, extract (all batches, as if one after another) and load, as the page shows them."""
    return f"plan {plan:.1f} · extract {extract:.1f} · load {load:.1f}"


def schema_change_view(row: tuple) -> dict[str, Any]:
    """One ``schema_history`` row as the page shows it (types as ``old → new``)."""
    recorded_at, run_id, column, change, old_type, new_type, policy, outcome, detail = row
    when = recorded_at.astimezone(timezone.utc) if recorded_at.tzinfo else recorded_at
    types = f"{old_type} → {new_type}" if old_type and new_type else (new_type or old_type or "")
    return {"when": f"{when:%Y-%m-%d %H:%M} UTC", "run_id": run_id, "column": column, "change": change,
            "types": types, "policy": policy, "outcome": outcome, "detail": detail}


def _sample_text(sample: list[dict[str, Any]], key: tuple[str, ...]) -> str:
    """``o_orderkey 6000001 (o_orderstatus: X)`` for up to 5 failing rows."""
    parts = []
    for row in sample[:5]:
        keys = ", ".join(f"{k} {row[k]}" for k in key if k in row)
        values = ", ".join(f"{k}: {v}" for k, v in row.items() if k not in key)
        parts.append(keys + (f" ({values})" if values else ""))
    return "; ".join(parts) + (f"; and {len(sample) - 5} more in the sample" if len(sample) > 5 else "")


def collect(conn: psycopg.Connection, pipelines: tuple[Pipeline, ...]) -> list[TableView]:
    """Reads what the page shows for each pipeline (an empty view before the first run).

    Returns:
        One :class:`TableView` per pipeline, in configuration order.
    """
    (ready,) = conn.execute("SELECT to_regclass('warehouse_sync.dq_results') IS NOT NULL").fetchone()  # type: ignore[misc]
    views = [TableView(p) for p in pipelines]
    if not ready:
        conn.commit()
        return views
    (history,) = conn.execute(  # type: ignore[misc]
        "SELECT to_regclass('warehouse_sync.schema_history') IS NOT NULL").fetchone()
    for view in views:
        p = view.pipeline
        runs = conn.execute(load_sql("quality/page_runs.sql"), {"pipeline": p.name, "limit": RUNS_SHOWN}).fetchall()
        run_ids = [r[0] for r in runs]
        drift = {r[0]: r[1:] for r in conn.execute(load_sql("quality/page_drift.sql"),
                                                     {"pipeline": p.name, "run_ids": run_ids}).fetchall()}
        expectations: dict[str, list[tuple]] = {}
        for row in conn.execute(load_sql("quality/page_expectations.sql"),
                                {"pipeline": p.name, "run_ids": run_ids}).fetchall():
            expectations.setdefault(row[0], []).append(row)
        for run_id, start, end, rows_loaded, drift_seen, reconciled, is_sync, *seconds, in_flight in runs:
            text, failed = _expectations_text(expectations.get(run_id, []))
            reconciliation = _reconciliation_text(bool(reconciled), bool(drift_seen), drift.get(run_id))
            if in_flight:
                reconciliation += (f"; {in_flight} key(s) in flight (changed at the source during the run; "
                                   "checked again next run)")
            if is_sync:
                window, dag_id = _format_window(start, end), p.dag_id
            else:  # the daily whole-table reconcile: nothing loaded, nothing validated
                window, dag_id, text = f"whole table, rows before {end:%Y-%m-%d %H:%M} UTC", f"reconcile_{p.name}", "-"
            view.runs.append(RunView(run_id, dag_id, window, int(rows_loaded), reconciliation, text,
                                     failed or reconciliation.startswith("repair refused"),
                                     time_text(*seconds) if is_sync else "-"))
        latest = next((run_id for run_id in run_ids if run_id in expectations), None)
        if latest:
            rows = expectations[latest]
            view.expectations_window = _format_window(rows[0][1], rows[0][2])
            view.docs_path = rows[0][10]
            view.expectations = [{
                "label": r[3], "columns": r[4], "severity": r[5], "success": r[6], "observed": r[7],
                "unexpected": r[8], "sample": _sample_text(r[9] or [], p.primary_key),
            } for r in rows]
        view.trend = [(r[0], int(r[1])) for r in conn.execute(
            load_sql("quality/page_trend.sql"), {"pipeline": p.name, "days": TREND_DAYS}).fetchall()]
        if history:
            view.schema_changes = [schema_change_view(r) for r in conn.execute(
                load_sql("quality/page_schema_changes.sql"), {"pipeline": p.name, "limit": SCHEMA_CHANGES_SHOWN})]
        staged = conn.execute(load_sql("quality/page_staging.sql"), {"pipeline": p.name}).fetchone()
        if staged is not None:
            view.staging = staging_text(int(staged[0] or 0), int(staged[1] or 0), staged[2], staged[3])
        slot = conn.execute(load_sql("quality/page_cdc_slot.sql"), {"pipeline": p.name}).fetchone()
        if slot is not None:
            view.cdc_slot = cdc_slot_text(int(slot[0] or 0), slot[1], int(slot[2] or 0), slot[3], slot[4])
        view.freshness = [(r[0], int(r[1])) for r in conn.execute(
            load_sql("quality/page_freshness.sql"), {"pipeline": p.name, "limit": FRESHNESS_SHOWN}).fetchall()]
        running = conn.execute(load_sql("quality/page_progress.sql"), {"pipeline": p.name}).fetchone()
        if running is not None:
            view.progress = progress_text(*running)
    conn.commit()
    return views


def progress_text(run_id: str, start: datetime | None, end: datetime, batches: int | None, extracted: int,
                  rows: int, planned_at: datetime) -> str:
    """A run that has not loaded yet: ``run …, window …: 3 of 8 batches extracted, 1,200,000 rows so far``."""
    total = "?" if batches is None else f"{batches:,}"
    return (f"running: {run_id}, window {_format_window(start, end)}: {extracted:,} of {total} batches "
            f"extracted, {rows:,} rows so far (planned {planned_at:%Y-%m-%d %H:%M} UTC)")


def chart(trend: list[tuple[datetime, int]], width: int = 560, height: int = 120, unit: str = "rows") -> dict[str, Any]:
    """Bar geometry for a chart of values over time (SVG units); empty when there is no trend.

    Args:
        trend: ``(when, value)`` pairs, oldest first (rows per window, or freshness seconds).
        width: SVG width.
        height: SVG height.
        unit: The values' unit, for the bars' titles (``rows``, ``s``).
    """
    if not trend:
        return {"bars": [], "width": width, "height": height, "max": 0}
    top = max(rows for _, rows in trend) or 1
    step = width / len(trend)
    bars = [{"x": round(i * step + 1, 1), "w": round(max(step - 2, 1), 1), "h": round((height - 20) * rows / top, 1),
             "y": round(height - 20 - (height - 20) * rows / top, 1),
             "title": f"{end:%Y-%m-%d %H:%M} UTC: {rows:,} {unit}"} for i, (end, rows) in enumerate(trend)]
    return {"bars": bars, "width": width, "height": height, "max": top,
            "first": f"{trend[0][0]:%m-%d %H:%M}", "last": f"{trend[-1][0]:%m-%d %H:%M}"}


def render(views: list[TableView], base: str = "", error: str | None = None, note: str | None = None,
           nonce: str = "") -> str:
    """The page's HTML.

    Args:
        views: What :func:`collect` returned.
        base: URL prefix of the Airflow API server (``""`` at the root), for links to runs and docs.
        error: A plain message shown instead of the tables (e.g. the warehouse is unreachable).
        note: A plain line under the title (e.g. how many pipelines the user may not see).
        nonce: The Content-Security-Policy nonce of the page's style block (:data:`...app.PAGE_CSP`).
    """
    env = Environment(loader=PackageLoader("warehouse_sync.quality", "templates"),
                      autoescape=select_autoescape(["html"]))
    return env.get_template("data_quality.html").render(views=views, base=base, error=error, note=note, nonce=nonce,
                                                          chart=chart)
