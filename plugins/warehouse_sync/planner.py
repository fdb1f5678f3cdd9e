"""Windows and keyset batches: which rows a run owns and how they are split over mapped tasks.

A run owns the half-open window ``[start, end)`` of the cursor column (``start`` is ``None`` for an
initial snapshot). The window's rows are ordered by the keyset ``(cursor, pk...)``; a batch is a
half-open range of that order, ``[lower, upper)``, holding at most ``batch_size`` rows when planned.
Batches tile the window (the first has no lower bound, the last no upper bound), so a row whose
cursor is in the window is read by exactly one batch even if it arrives after planning.

Boundaries come from one index-order scan with ``row_number()`` over the key columns: never
``OFFSET``, which skips or repeats rows when rows move during a run (the "OFFSET trap"; see
use-the-index-luke.com/no-offset).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from warehouse_sync.config import Pipeline
from warehouse_sync.queries import bind_row, idents, load_sql, placeholders, row_of, table_ident

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """A half-open interval ``[start, end)`` of the cursor, in UTC; ``start=None`` means unbounded."""

    start: datetime | None
    end: datetime

    def to_dict(self) -> dict[str, str | None]:
        return {"start": self.start.isoformat() if self.start else None, "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, raw: dict[str, str | None]) -> "Window":
        start = raw.get("start")
        return cls(datetime.fromisoformat(start) if start else None, datetime.fromisoformat(str(raw["end"])))

    def __str__(self) -> str:
        return f"[{self.start.isoformat() if self.start else '-inf'}, {self.end.isoformat()})"


@dataclass(frozen=True)
class Batch:
    """One keyset range of a window.

    Attributes:
        index: 0-based position in the window.
        lower: Inclusive lower keyset bound ``[cursor, pk...]`` as PostgreSQL text, or ``None``.
        upper: Exclusive upper keyset bound, same shape, or ``None``.
    """

    index: int
    lower: tuple[str, ...] | None
    upper: tuple[str, ...] | None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "lower": list(self.lower or []) or None, "upper": list(self.upper or []) or None}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Batch":
        lower, upper = raw.get("lower"), raw.get("upper")
        return cls(int(raw["index"]), tuple(lower) if lower else None, tuple(upper) if upper else None)


def keyset_columns(pipeline: Pipeline, window: Window) -> tuple[str, ...]:
    """The keyset order of a window: cursor first, then the primary key columns; for a snapshot
    (``window.start is None``) the primary key alone, whose index order follows the heap: measured
    on TPC-H SF 1 orders, reading in key order takes 1.2 s against 4.5 s in (cursor, key) order."""
    return pipeline.primary_key if window.start is None else (pipeline.cursor, *pipeline.primary_key)


def window_filter(cursor: str, window: Window, prefix: str | None = None) -> tuple[sql.Composable, dict[str, Any]]:
    """SQL predicate and parameters for ``cursor`` in ``window`` (half-open)."""
    column = sql.Identifier(prefix, cursor) if prefix else sql.Identifier(cursor)
    params: dict[str, Any] = {"window_end": window.end}
    clause = sql.SQL("{c} < %(window_end)s").format(c=column)
    if window.start is not None:
        clause = sql.SQL("{c} >= %(window_start)s AND ").format(c=column) + clause
        params["window_start"] = window.start
    return clause, params


def batch_filter(pipeline: Pipeline, window: Window, batch: Batch) -> tuple[sql.Composable, dict[str, Any]]:
    """SQL predicate and parameters for the rows of one batch (window and keyset range)."""
    clause, params = window_filter(pipeline.cursor, window)
    keys = keyset_columns(pipeline, window)
    parts = [clause]
    if batch.lower is not None:
        parts.append(sql.SQL("{} >= {}").format(row_of(keys), placeholders("lower", len(keys))))
        params.update(bind_row("lower", batch.lower))
    if batch.upper is not None:
        parts.append(sql.SQL("{} < {}").format(row_of(keys), placeholders("upper", len(keys))))
        params.update(bind_row("upper", batch.upper))
    return sql.SQL(" AND ").join(parts), params


def plan_batches(conn: psycopg.Connection, pipeline: Pipeline, window: Window) -> list[Batch]:
    """Splits a window's rows into keyset batches of at most ``pipeline.batch_size`` rows
    (``snapshot_batch_size`` for a full snapshot).

    Args:
        conn: Source connection.
        pipeline: The table's configuration.
        window: The run's window.

    Returns:
        Batches in keyset order; an empty list when the window has no rows.
    """
    keys = keyset_columns(pipeline, window)
    where, params = window_filter(pipeline.cursor, window)
    query = load_sql(
        "plan_boundaries.sql",
        key_text=sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k)) for k in keys),
        keys=idents(keys),
        table=table_ident(pipeline.source),
        window=where,
    )
    with conn.cursor() as cur:
        size = pipeline.snapshot_batch_size if window.start is None else pipeline.batch_size
        starts = [tuple(row[:-1]) for row in cur.execute(query, {**params, "batch_size": size})]
    conn.commit()
    batches = []
    for i, start in enumerate(starts):
        upper = starts[i + 1] if i + 1 < len(starts) else None
        batches.append(Batch(index=i, lower=None if i == 0 else start, upper=upper))
    return batches


def count_window(conn: psycopg.Connection, pipeline: Pipeline, window: Window) -> int:
    """Number of source rows whose cursor is in the window (rows)."""
    where, params = window_filter(pipeline.cursor, window)
    query = load_sql("window_count.sql", table=table_ident(pipeline.source), window=where)
    (count,) = conn.execute(query, params).fetchone()  # type: ignore[misc]
    conn.commit()
    return int(count)


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
        oldest, open_count = conn.execute(load_sql("inflight_transactions.sql"), {"window_end": window_end}).fetchone()  # type: ignore[misc]
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
