-- The oldest open transaction on this database that started before the window end: its rows can
-- still commit with a cursor inside the window (a late commit). Sessions of other roles show a NULL
-- xact_start unless this role has pg_read_all_stats.
SELECT min(xact_start) AS oldest, count(*) AS open_transactions
FROM pg_catalog.pg_stat_activity
WHERE datname = current_database()
  AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
  AND xact_start < %(window_end)s
