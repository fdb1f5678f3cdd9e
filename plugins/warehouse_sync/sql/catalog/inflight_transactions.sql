-- Transactions on this database that may still commit rows with a cursor before the window end (late
-- commits): sessions that began before it and hold a transaction id (backend_xid: they wrote, or
-- locked rows for writing; a read-only session, even idle in transaction for days, holds none and
-- can commit no row), and prepared transactions (their start is not recorded: only their PREPARE time).
-- Sessions of other roles show NULL xact_start and backend_xid unless this role has pg_read_all_stats.
-- Binds: window_end.
WITH sessions AS (
    SELECT xact_start
    FROM pg_catalog.pg_stat_activity
    WHERE datname = current_database()
      AND pid <> pg_backend_pid()
      AND backend_type = 'client backend'
      AND backend_xid IS NOT NULL
      AND xact_start < %(window_end)s
), prepared AS (
    SELECT p.prepared
    FROM pg_catalog.pg_prepared_xacts AS p
    WHERE p.database = current_database()
)
SELECT (SELECT min(xact_start) FROM sessions) AS oldest,
       (SELECT count(*) FROM sessions) AS open_transactions,
       (SELECT count(*) FROM prepared) AS prepared_transactions,
       (SELECT min(prepared) FROM prepared) AS oldest_prepared
