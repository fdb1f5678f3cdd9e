-- The status of a pipeline's latest audit row of one step, other runs than this one (a retry sees the one before).
SELECT status FROM warehouse_sync.audit
WHERE pipeline = %(pipeline)s AND step = %(step)s AND run_id <> %(run_id)s
ORDER BY id DESC
LIMIT 1
