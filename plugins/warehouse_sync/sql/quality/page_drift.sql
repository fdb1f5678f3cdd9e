-- What the reconciles of the given runs found and repaired.
SELECT run_id, sum(missing), sum(extra), sum(changed), sum(repaired), bool_or(refused)
FROM warehouse_sync.drift_history
WHERE pipeline = %(pipeline)s AND run_id = ANY(%(run_ids)s)
GROUP BY run_id
