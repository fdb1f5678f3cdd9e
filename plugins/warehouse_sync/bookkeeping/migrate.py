"""The bookkeeping tables' DDL, applied once per task that writes them: the only DDL outside the load.

``warehouse_sync/sql/bookkeeping/tables.sql`` creates the ``warehouse_sync`` schema with ``audit``,
``sync_state``, ``drift_history``, ``dq_results`` and ``schema_history`` (``CREATE … IF NOT EXISTS``: idempotent). A
transaction-scoped advisory lock serialises concurrent first runs, which would otherwise race on
the catalog.
"""

from __future__ import annotations

import psycopg

from warehouse_sync.db.statements import DDL_LOCK, load_sql


def ensure_tables(conn: psycopg.Connection) -> None:
    """Creates the bookkeeping schema and tables if missing (safe to run concurrently).

    Args:
        conn: Warehouse connection (left with no open transaction).
    """
    with conn.transaction():
        conn.execute(DDL_LOCK)
        conn.execute(load_sql("bookkeeping/tables.sql"))
    conn.commit()
