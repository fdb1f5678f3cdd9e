"""Per-pipeline sync state in the warehouse: the high watermark and the late horizon.

``warehouse_sync.sync_state`` holds, per pipeline, the *high watermark* (the greatest window end
loaded) and the *late horizon*: the start of the oldest source transaction still open when a window
was read, from which a later run re-reads so that a late commit is never lost (docs/operating.md,
"Late commits"). Every write keeps the oldest horizon and the greatest watermark, so concurrent and
out-of-order runs (a backfill) never move either the wrong way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from warehouse_sync.db.statements import load_sql
from warehouse_sync.model import Window

READ_STATE = "SELECT late_horizon, high_watermark FROM warehouse_sync.sync_state WHERE pipeline = %(pipeline)s"


@dataclass(frozen=True)
class SyncState:
    """A pipeline's state.

    Attributes:
        late_horizon: Where the next run must start re-reading (UTC), or ``None``.
        high_watermark: The greatest window end loaded (UTC), or ``None`` before the first load.
    """

    late_horizon: datetime | None
    high_watermark: datetime | None


def read_state(conn: psycopg.Connection, pipeline: str) -> SyncState:
    """The pipeline's sync state (all ``None`` before its first run)."""
    row = conn.execute(READ_STATE, {"pipeline": pipeline}).fetchone()
    conn.commit()
    return SyncState(*(row or (None, None)))


def hold_late_horizon(conn: psycopg.Connection, pipeline: str, horizon: datetime) -> None:
    """Remembers that source rows from ``horizon`` (UTC) on may still commit late (keeps the oldest)."""
    with conn.transaction():
        conn.execute(load_sql("bookkeeping/hold_late_horizon.sql"), {"pipeline": pipeline, "horizon": horizon})
    conn.commit()


def release_late_horizon(
    conn: psycopg.Connection, pipeline: str, covered: Window, own_horizon: datetime | None
) -> None:
    """After loading ``covered``: drop a late horizon it re-read, keep ``own_horizon``, raise the watermark."""
    with conn.transaction():
        conn.execute(load_sql("bookkeeping/release_late_horizon.sql"), {
            "pipeline": pipeline, "covered_from": covered.start, "window_end": covered.end,
            "own_horizon": own_horizon,
        })
    conn.commit()
