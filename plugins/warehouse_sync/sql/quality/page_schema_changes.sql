-- The latest schema changes of one pipeline's source, newest first: what changed and what the load did.
SELECT recorded_at, run_id, column_name, change, old_type, new_type, policy, outcome, detail
FROM warehouse_sync.schema_history
WHERE pipeline = %(pipeline)s
ORDER BY id DESC
LIMIT %(limit)s
