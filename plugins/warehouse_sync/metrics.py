"""Per-pipeline metrics through Airflow's metrics, and the freshness each load and health check measures.

Emitted with ``airflow.sdk.observability.stats``, so they go wherever Airflow's own metrics go
(``[metrics] statsd_on`` or ``otel_on``; nothing when neither is on). Each name carries the pipeline
(StatsD has no tags), and each call also passes ``tags={"pipeline": name}`` for OpenTelemetry and
DogStatsD. The prefix is Airflow's ``[metrics] statsd_prefix`` (default ``airflow``).

=========================================================  =======  =======  =====================================
metric                                                     kind     unit     emitted by
=========================================================  =======  =======  =====================================
``warehouse_sync.<pipeline>.freshness_lag_seconds``        gauge    seconds  load and the daily ``health`` task:
                                                                             now minus the newest cursor in the target
``warehouse_sync.<pipeline>.rows_staged``                  counter  rows     load: rows (CDC: changes) read
``warehouse_sync.<pipeline>.rows_merged``                  counter  rows     load: rows inserted, replaced, deleted
``warehouse_sync.<pipeline>.bytes_staged``                 counter  bytes    load: bytes of the staged files read
``warehouse_sync.<pipeline>.drift_rows``                   counter  rows     reconcile: keys found missing, extra or
                                                                             changed (in-flight keys aside)
``warehouse_sync.<pipeline>.repaired_rows``                counter  rows     reconcile: rows the repair wrote
``warehouse_sync.<pipeline>.slot_lag_seconds``             gauge    seconds  CDC health: the slot's lag
``warehouse_sync.<pipeline>.slot_retained_wal_bytes``      gauge    bytes    CDC health: WAL the slot retains
``warehouse_sync.<pipeline>.stale``                        counter  1        when freshness first passes
                                                                             ``max_staleness_minutes`` (the alert)
=========================================================  =======  =======  =====================================

Freshness is also recorded as the audit step ``freshness`` (``detail.lag_seconds``, status ``stale``
or ``ok``), which the data-quality page charts over the last runs. With ``max_staleness_minutes``
set, the first measurement past it (after one that was not) carries one alert line, sent by the task
like the other health alerts; a pipeline that stays stale is not alerted again until it recovers.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from warehouse_sync.bookkeeping import marks
from warehouse_sync.db.statements import load_sql, table_ident
from warehouse_sync.model import Health, Loaded, Window
from warehouse_sync.run import Run

PREFIX = "warehouse_sync"


def _name(pipeline: str, metric: str) -> str:
    return f"{PREFIX}.{pipeline}.{metric}"


def _gauge(pipeline: str, metric: str, value: float) -> None:
    from airflow.sdk.observability import stats

    stats.gauge(_name(pipeline, metric), value, tags={"pipeline": pipeline})


def _count(pipeline: str, metric: str, value: int) -> None:
    from airflow.sdk.observability import stats

    stats.incr(_name(pipeline, metric), value, tags={"pipeline": pipeline})


def emit_load(pipeline: str, loaded: Loaded) -> None:
    """``rows_staged``, ``rows_merged`` and ``bytes_staged`` of one load."""
    _count(pipeline, "rows_staged", loaded.staged)
    _count(pipeline, "rows_merged", loaded.merged)
    _count(pipeline, "bytes_staged", loaded.bytes)


def emit_reconcile(pipeline: str, drift: dict[str, Any] | None) -> None:
    """``drift_rows`` (missing + extra + changed) and ``repaired_rows`` of one reconcile (zeros when it matched)."""
    drift = drift or {}
    _count(pipeline, "drift_rows", sum(int(drift.get(k) or 0) for k in ("missing", "extra", "changed")))
    _count(pipeline, "repaired_rows", int(drift.get("repaired") or 0))


def emit_health(pipeline: str, health: Health) -> None:
    """A mode's health figures as gauges (CDC: ``slot_lag_seconds``, ``slot_retained_wal_bytes``)."""
    lag = health.detail.get("lag_seconds")
    if lag is not None:
        _gauge(pipeline, "slot_lag_seconds", float(lag))
    if health.step == "cdc_slot":
        _gauge(pipeline, "slot_retained_wal_bytes", float(health.bytes))


def measure_freshness(run: Run, window: Window) -> Health:
    """How old the newest source change in the target is, recorded, emitted and judged against the deadline.

    One probe of the target's cursor index (``max(cursor)``), the audit row ``freshness`` and the
    ``freshness_lag_seconds`` gauge; with ``max_staleness_minutes`` set and passed for the first time
    since the last measurement that was not stale, one alert line and the ``stale`` counter.

    Args:
        run: The pipeline and its connections (the target is read on the warehouse).
        window: The audit row's window (the run's window, or the health check's).

    Returns:
        The measurement as a :class:`Health` (step ``freshness``; ``detail``: ``lag_seconds``,
        ``newest_change`` ISO UTC or ``None``, ``max_staleness_minutes``).
    """
    pipeline, warehouse = run.pipeline, run.warehouse
    query = load_sql("target/freshness.sql", cursor=sql.Identifier(pipeline.cursor), table=table_ident(pipeline.target))
    try:
        row = warehouse.execute(query).fetchone()
    except psycopg.errors.UndefinedTable:  # nothing loaded yet: no target
        warehouse.rollback()
        row = None
    newest, now = row if row is not None else (None, None)
    if isinstance(newest, int):  # an integer cursor: when the plan that read past it read it
        newest = marks.written_by(warehouse, pipeline.name, newest)
    if newest is not None and newest.tzinfo is None and pipeline.cursor_time_zone is not None:
        newest = newest.replace(tzinfo=ZoneInfo(pipeline.cursor_time_zone))  # a wall-clock cursor: its zone's time
    lag: float | None = (now - newest).total_seconds() if newest is not None and now is not None else None
    limit = pipeline.max_staleness_minutes
    stale = lag is not None and limit is not None and lag > limit * 60
    previous = warehouse.execute(load_sql("bookkeeping/last_status.sql"), {
        "pipeline": pipeline.name, "step": "freshness", "run_id": run.run_id}).fetchone()
    warehouse.commit()
    alerts: tuple[str, ...] = ()
    if stale and lag is not None and (previous is None or previous[0] != "stale"):
        alerts = (f"freshness: the newest change in {pipeline.target} is {lag / 60:.1f} min old "
                  f"({newest.isoformat() if newest else '-'}), past max_staleness_minutes {limit}",)
        _count(pipeline.name, "stale", 1)
    detail = {"lag_seconds": round(lag, 3) if lag is not None else None,
              "newest_change": newest.isoformat() if newest is not None else None, "max_staleness_minutes": limit}
    run.record("freshness", window, status="stale" if stale else "ok", detail=detail)
    if lag is not None:
        _gauge(pipeline.name, "freshness_lag_seconds", lag)
    return Health(step="freshness", alerts=alerts, detail=detail)
