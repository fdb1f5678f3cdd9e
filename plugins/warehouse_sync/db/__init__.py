"""Database access shared by every room: connections, SQL statements, the catalog.

* :mod:`.connections` — psycopg 3 connections from Airflow Connections (``PostgresHook``), UTC sessions.
* :mod:`.statements` — the package's SQL files and ``psycopg.sql`` composition helpers.
* :mod:`.catalog` — a table's columns, key and exact Arrow schema; the row-hash inputs.
* :mod:`.csv_text` — ``COPY … (FORMAT csv)`` output parsed into Arrow (both modes' bulk reads).
* :mod:`.batches` — a table's key order cut into snapshot batches (both modes).
* :mod:`.inflight` — late commits: waiting out source transactions that began before an instant.
"""
