"""Cursor marks: what a window of time means for an integer cursor.

An integer cursor (a version column every insert and update sets from one sequence, e.g. by a
trigger: ``NEW.version := nextval('…')``) has no time, so a window ``[start, end)`` cannot be compared
with it. The plan of a new window end reads the source's greatest cursor value and records the
*mark* ``max + 1`` in ``warehouse_sync.cursor_marks``, with the source's clock after the read
(``read_at``). The window's rows are then those with ``mark(start) <= cursor < mark(end)``
(:class:`warehouse_sync.model.Window`'s ``cursor_start``, ``cursor_end``), where ``mark(t)`` is:

* the mark recorded for the window end ``t``, when ``t`` is one: consecutive windows share their
  bound, so they tile the cursor's values and every row is in exactly one;
* otherwise (a late horizon, a window widened by ``lookback_minutes``, a backfill's interval) the
  latest mark *read at or before* ``t``: a writer that started after ``read_at`` took its value after
  the read, and a sequence (without ``CACHE``) hands out increasing values, so nothing it wrote is
  below that mark. Late commits follow the timestamp rule (:mod:`warehouse_sync.db.inflight`): the
  plan waits for the source transactions that started before ``read_at``, and a late horizon it
  holds is a source time that this rule turns back into a mark;
* before any mark: no lower bound for a start, no row for an end.

Marks never go down (the row holding the greatest value may be deleted), and one is recorded only
for a window end after every recorded one: a retried plan reuses its mark, a backfill of an earlier
interval looks its bounds up. The daily reconcile and the freshness gauge look marks up too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from warehouse_sync.config import Pipeline
from warehouse_sync.db.statements import load_sql, table_ident
from warehouse_sync.model import Window

NO_ROW = -(2**63)
"""An end bound no ``bigint`` is below: the window of an end before any mark holds no row."""

READ_SOURCE = "SELECT max({cursor})::bigint + 1 FROM {table}"
READ_CLOCK = "SELECT clock_timestamp()"


@dataclass(frozen=True)
class Mark:
    """An integer cursor's value at a window end.

    Attributes:
        value: The exclusive bound: rows with cursor < ``value`` had been read; ``None`` when the
            source had no row.
        read_at: The source's clock after the read (UTC): a writer starting later takes a greater value.
    """

    value: int | None
    read_at: datetime


def _one(warehouse: psycopg.Connection, name: str, pipeline: str, at: datetime) -> Mark | None:
    row = warehouse.execute(load_sql(name), {"pipeline": pipeline, "at": at}).fetchone()
    warehouse.commit()
    return Mark(row[0], row[1]) if row is not None else None


def mark_of(warehouse: psycopg.Connection, pipeline: str, at: datetime) -> Mark | None:
    """``mark(at)`` (module docstring): the mark recorded for the window end ``at``, else the latest read by then.

    Returns:
        The mark, or ``None`` when no mark was read at or before ``at``.
    """
    return (_one(warehouse, "bookkeeping/mark_at.sql", pipeline, at)
            or _one(warehouse, "bookkeeping/mark_read_by.sql", pipeline, at))


def resolve(warehouse: psycopg.Connection, pipeline: str, window: Window) -> Window:
    """``window`` with its integer bounds looked up (nothing recorded): for a reconcile or a re-read."""
    start = None if window.start is None else mark_of(warehouse, pipeline, window.start)
    end = mark_of(warehouse, pipeline, window.end)
    return Window(window.start, window.end, start.value if start else None,
                  end.value if end is not None and end.value is not None else NO_ROW)


def plan_window(source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline,
                window: Window, late_horizon: datetime | None = None) -> tuple[Window, datetime]:
    """A plan's window with its integer bounds, recording the mark of a new window end.

    A window end after every recorded one gets a new mark: ``max(cursor) + 1`` read on the source,
    then the source's clock. Any other end (a retry, a backfill) reuses or looks up its mark.

    Args:
        source: Source connection (one index probe of the cursor: the ``(cursor, key)`` index).
        warehouse: Warehouse connection (``warehouse_sync.cursor_marks``).
        pipeline: The table's configuration.
        window: The run's window of time (:func:`warehouse_sync.sync.plan.run_window`).
        late_horizon: The pipeline's late horizon (UTC), or ``None``. The window of time starts there
            when it is earlier, but its start's mark may have been read after it: the start is moved
            down to the mark read by the horizon, where a late writer's values begin.

    Returns:
        The window with ``cursor_start`` / ``cursor_end``, and the instant late commits are settled
        against (:func:`warehouse_sync.db.inflight.settle`): the end mark's ``read_at``, or the window
        end when it has no mark.
    """
    name = pipeline.name
    end = _one(warehouse, "bookkeeping/mark_at.sql", name, window.end)
    if end is None:
        (latest,) = warehouse.execute(load_sql("bookkeeping/latest_mark.sql"), {"pipeline": name}).fetchone()  # type: ignore[misc]
        warehouse.commit()
        if latest is None or latest < window.end:
            query = sql.SQL(READ_SOURCE).format(cursor=sql.Identifier(pipeline.cursor),
                                                table=table_ident(pipeline.source))
            (value,) = source.execute(query).fetchone()  # type: ignore[misc]
            (read_at,) = source.execute(READ_CLOCK).fetchone()  # type: ignore[misc]
            source.commit()
            with warehouse.transaction():
                warehouse.execute(load_sql("bookkeeping/record_mark.sql"),
                                  {"pipeline": name, "at": window.end, "mark": value, "read_at": read_at})
            warehouse.commit()
        end = mark_of(warehouse, name, window.end)
    resolved = resolve(warehouse, name, window) if end is not None else Window(
        window.start, window.end, None, NO_ROW)
    if late_horizon is not None and resolved.cursor_start is not None:
        late = _one(warehouse, "bookkeeping/mark_read_by.sql", name, late_horizon)
        lower = late.value if late is not None else None
        if lower is None or lower < resolved.cursor_start:
            resolved = Window(resolved.start, resolved.end, lower, resolved.cursor_end)
    return resolved, end.read_at if end is not None else window.end


def written_by(warehouse: psycopg.Connection, pipeline: str, newest: int) -> datetime | None:
    """When the plan that read past ``newest`` (the target's greatest cursor) read it, or ``None``.

    Every row with a smaller value had been written by then: the time the freshness gauge measures from.
    """
    (read_at,) = warehouse.execute(load_sql("bookkeeping/mark_written_by.sql"),  # type: ignore[misc]
                                   {"pipeline": pipeline, "newest": newest}).fetchone()
    warehouse.commit()
    return read_at
