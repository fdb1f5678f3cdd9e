"""The schema history in the warehouse: one row per schema change of a pipeline's source.

``warehouse_sync.schema_history``: table, column, change (added, dropped, widened, narrowed,
incompatible), old and new type, the policy, the outcome (applied, kept, ignored, rejected), run and
time. The load writes applied changes in its own transaction (they exist only if the load commits);
rejected ones after it rolled back. A lasting difference every run sees again (a new column ignored
under ``discard``, a dropped column kept) is recorded once; the data-quality page lists the rows.
"""

from __future__ import annotations

from typing import Any, Iterable

import psycopg

from warehouse_sync.db.statements import load_sql


def record(conn: psycopg.Connection, pipeline: str, run_id: str, target: str, policy: str,
           changes: Iterable[Any]) -> list[Any]:
    """Inserts one row per change, in the caller's transaction (no commit).

    Args:
        conn: Warehouse connection.
        pipeline: Pipeline name.
        run_id: Airflow run id.
        target: The target table (``schema.table``).
        policy: The pipeline's ``schema_changes``.
        changes: :class:`warehouse_sync.sync.schema.ColumnChange` values.

    Returns:
        The changes that were new (recorded now; a lasting one already on record is skipped).
    """
    recorded = []
    statement = load_sql("bookkeeping/record_schema_change.sql")
    for change in changes:
        cur = conn.execute(statement, {
            "pipeline": pipeline, "run_id": run_id, "target": target, "column": change.column,
            "change": change.change, "old_type": change.old_type, "new_type": change.new_type, "policy": policy,
            "outcome": change.outcome, "detail": change.detail,
        })
        if cur.rowcount:
            recorded.append(change)
    return recorded
