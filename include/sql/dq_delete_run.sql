-- A retried validate replaces its own run's results.
DELETE FROM warehouse_sync.dq_results WHERE pipeline = %(pipeline)s AND run_id = %(run_id)s
