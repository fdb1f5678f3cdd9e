-- Expectation results of the given runs: failures first (fail before warn), then passes.
SELECT run_id, window_start, window_end, label, columns, severity, success, observed_value,
       unexpected_count, sample, docs_path
FROM warehouse_sync.dq_results
WHERE pipeline = %(pipeline)s AND run_id = ANY(%(run_ids)s)
ORDER BY success, severity = 'warn', id
