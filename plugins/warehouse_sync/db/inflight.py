"""Late commits: wait until no source transaction that began before an instant can still commit rows.

A transaction that began before a window's end can still commit rows whose cursor (set from
``now()``, its start time) lies inside the window: a *late commit*. Both modes' plans wait them out
before reading (cursor mode: the window end; CDC: the plan's LSN), and hand a *late horizon* to a
later run when the wait times out (:func:`settle`).

Only transactions that can commit rows count: sessions holding a transaction id (``backend_xid``;
a read-only session, even one left idle in transaction for days, holds none) and prepared
transactions. The horizon is never older than ``late_horizon_max_age_seconds`` before the window
end: one forgotten writing session would otherwise pin every later window's start at its own. When
that bound is hit, the plan warns on every run and alerts once per stuck transaction; rows such a
transaction commits before the bound are the daily reconcile's to repair. The plan also warns when
the source role cannot see other roles' sessions (``pg_read_all_stats``): their late commits are
then not waited out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from warehouse_sync.bookkeeping import audit
from warehouse_sync.db.statements import load_sql
from warehouse_sync.run import Run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settled:
    """What the wait for late commits found.

    Attributes:
        late_horizon: Where a later run must re-read from (UTC), or ``None`` when everything settled;
            never older than ``window_end - max_age``.
        oldest_open: The start (UTC) of the oldest writing session still open at the timeout, uncapped,
            or ``None``.
        open_transactions: Writing sessions still open at the timeout (count).
        prepared_transactions: Prepared transactions still open at the timeout (count).
        oldest_prepared: When the oldest of them was prepared (UTC), or ``None``.
        capped: Whether the horizon was bounded by the maximum age: a session began before the bound,
            or a transaction is prepared (its start is not recorded, so the bound is all that is known).
    """

    late_horizon: datetime | None
    oldest_open: datetime | None = None
    open_transactions: int = 0
    prepared_transactions: int = 0
    oldest_prepared: datetime | None = None
    capped: bool = False

    @property
    def blocker(self) -> str:
        """Names what held the horizon, the same on every run while it stays open (the alert's once-key)."""
        if self.oldest_open is not None and (self.oldest_prepared is None or self.oldest_open <= self.oldest_prepared):
            return f"session since {self.oldest_open.isoformat()}"
        return f"prepared at {self.oldest_prepared.isoformat() if self.oldest_prepared else '?'}"


def wait_for_inflight(conn: psycopg.Connection, window_end: datetime, timeout_s: float,
                      max_age_s: float | None = None, poll_s: float = 0.5) -> Settled:
    """Waits until no source transaction that began before ``window_end`` can still commit rows.

    Args:
        conn: Source connection (its role should have ``pg_read_all_stats`` to see other roles).
        window_end: The window's exclusive end (UTC).
        timeout_s: Seconds to wait at most.
        max_age_s: The late horizon's greatest age before ``window_end`` (seconds); ``None``: unbounded.
        poll_s: Seconds between checks.

    Returns:
        ``late_horizon`` ``None`` when all settled; otherwise the start time of the oldest writing transaction
        still open at the timeout (a prepared one's is unknown: the bound), bounded by ``max_age_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        oldest, sessions, prepared, oldest_prepared = conn.execute(  # type: ignore[misc]
            load_sql("catalog/inflight_transactions.sql"), {"window_end": window_end}).fetchone()
        conn.commit()
        if oldest is None and not prepared:
            return Settled(None)
        if time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    bound = window_end - timedelta(seconds=max_age_s) if max_age_s is not None else None
    starts = [oldest] if oldest is not None else []
    if prepared:  # its start is not recorded: the bound (its PREPARE time is only an upper limit of it)
        starts.append(bound if bound is not None else oldest_prepared)
    horizon = min(starts)
    capped = bound is not None and (horizon < bound or bool(prepared))
    if bound is not None:
        horizon = max(horizon, bound)
    log.warning("%d writing source transaction(s) begun before %s and %d prepared one(s) still open after %.0f s "
                "(oldest began %s); continuing, a later run re-reads from %s", sessions, window_end, prepared,
                timeout_s, oldest, horizon)
    return Settled(horizon, oldest, int(sessions), int(prepared), oldest_prepared, capped)


def visibility_warnings(conn: psycopg.Connection) -> list[str]:
    """What the late-commit wait cannot see: other roles' sessions, unless the role may read them.

    Returns:
        One line with the fix (``GRANT pg_read_all_stats``), or none.
    """
    role, sees_all = conn.execute(load_sql("catalog/role_visibility.sql")).fetchone()  # type: ignore[misc]
    conn.commit()
    if sees_all:
        return []
    return [f"source role {role} cannot see other roles' transactions in pg_stat_activity, so their late "
            f"commits are not waited out and may be missed until the daily reconcile; fix on the source: "
            f"GRANT pg_read_all_stats TO {sql.Identifier(role).as_string(conn)}"]


def clock_warnings(conn: psycopg.Connection, window_end: datetime, timeout_s: float,
                   tolerance_s: float = 1.0) -> list[str]:
    """Whether the source's clock has passed the window end, waiting up to ``timeout_s`` seconds for it.

    A source whose clock is behind the worker's stamps rows with a cursor before ``window_end`` after
    this run has read the window: no later window reads them (the daily reconcile does).

    Returns:
        One line with the skew and the fix, when the source's clock is still more than ``tolerance_s``
        seconds behind ``window_end``; none otherwise.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        (now,) = conn.execute("SELECT clock_timestamp()").fetchone()  # type: ignore[misc]
        conn.commit()
        behind = (window_end - now).total_seconds()
        if behind <= tolerance_s:
            return []
        if time.monotonic() + behind > deadline:
            return [f"the source's clock ({now.isoformat()}) is {behind:.1f} s behind the window end "
                    f"{window_end.isoformat()}: rows it stamps before the window end after this plan are read by "
                    f"no later window (the daily reconcile repairs them); sync the source's clock (NTP) or set "
                    f"lookback_minutes to at least {int(behind // 60) + 1}"]
        time.sleep(min(behind, 1.0))


@dataclass(frozen=True)
class LateCommits:
    """The plan's late-commit step: the wait's outcome and what to tell the operator.

    Attributes:
        settled: The wait's outcome (:class:`Settled`).
        warnings: Lines for the log and the plan's audit row (every run they hold).
        alerts: Lines to send (the horizon's bound hit by a transaction not alerted before).
        facts: For the plan's audit row: ``late_horizon_capped`` (``{"blocker", "oldest_open"}``) when bounded.
    """

    settled: Settled
    warnings: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()
    facts: dict[str, Any] | None = None


def settle(run: Run, window_end: datetime) -> LateCommits:
    """Waits out late commits before ``window_end`` (:func:`wait_for_inflight`) and says what it could not.

    Args:
        run: The pipeline (``settle_timeout_seconds``, ``late_horizon_max_age_seconds``) and its connections;
            the warehouse's audit rows tell whether the bound's alert was sent already.
        window_end: The window's exclusive end (UTC).

    Returns:
        The outcome, with the warnings (logged here) and the alerts (sent by the DAG's plan task).
    """
    pipeline = run.pipeline
    warnings = visibility_warnings(run.source) + clock_warnings(run.source, window_end, pipeline.settle_timeout_seconds)
    settled = wait_for_inflight(run.source, window_end, pipeline.settle_timeout_seconds,
                                pipeline.late_horizon_max_age_seconds)
    alerts: list[str] = []
    facts = None
    if settled.capped:
        since = min(t for t in (settled.oldest_open, settled.oldest_prepared, settled.late_horizon) if t is not None)
        line = (f"late horizon bounded at {settled.late_horizon} (late_horizon_max_age_seconds = "
                f"{pipeline.late_horizon_max_age_seconds} before the window end {window_end}): a source transaction "
                f"({settled.blocker}) is still open and may commit rows this sync will not re-read; the daily "
                f"reconcile repairs them. Find it: SELECT pid, usename, state, xact_start FROM pg_stat_activity "
                f"WHERE backend_xid IS NOT NULL ORDER BY xact_start (or SELECT * FROM pg_prepared_xacts)")
        warnings.append(line)
        facts = {"late_horizon_capped": {"blocker": settled.blocker, "oldest_open": since.isoformat()}}
        if not audit.noted_in_plan(run.warehouse, pipeline.name, "late_horizon_capped", settled.blocker, since):
            alerts.append(line)
    for line in warnings:
        log.warning("%s: %s", pipeline.name, line)
    return LateCommits(settled, tuple(warnings), tuple(alerts), facts)
