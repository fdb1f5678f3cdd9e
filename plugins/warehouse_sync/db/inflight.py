"""Late commits: wait until no source transaction that began before an instant is still open.

A transaction that began before a window's end can still commit rows whose cursor (set from
``now()``, its start time) lies inside the window: a *late commit*. Both modes' plans wait them out
before reading (cursor mode: the window end; CDC: the plan's LSN), and hand a *late horizon* to a
later run when the wait times out.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

import psycopg

from warehouse_sync.db.statements import load_sql

log = logging.getLogger(__name__)


def wait_for_inflight(
    conn: psycopg.Connection, window_end: datetime, timeout_s: float, poll_s: float = 0.5
) -> datetime | None:
    """Waits until no source transaction that began before ``window_end`` is still open.

    Such a transaction can still commit rows whose cursor (set from ``now()``, its start time) lies
    inside the window: a *late commit*. Waiting them out before reading makes the window complete.

    Args:
        conn: Source connection (its role should have ``pg_read_all_stats`` to see other roles).
        window_end: The window's exclusive end (UTC).
        timeout_s: Seconds to wait at most.
        poll_s: Seconds between checks.

    Returns:
        ``None`` when all settled; otherwise the start time of the oldest transaction still open at
        the timeout: the *late horizon* a later run must re-read from.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        oldest, open_count = conn.execute(  # type: ignore[misc]
            load_sql("catalog/inflight_transactions.sql"), {"window_end": window_end}).fetchone()
        conn.commit()
        if oldest is None:
            return None
        if time.monotonic() >= deadline:
            log.warning(
                "%d source transaction(s) begun before %s still open after %.0f s (oldest began %s); "
                "continuing, a later run re-reads from %s",
                open_count, window_end, timeout_s, oldest, oldest,
            )
            return oldest
        time.sleep(poll_s)
