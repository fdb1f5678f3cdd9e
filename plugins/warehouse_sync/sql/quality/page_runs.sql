-- The latest runs of one pipeline, newest window first (then newest run): window, rows loaded, step statuses,
-- seconds of plan, extract (all batches) and load, keys in flight after the reconcile's repair.
SELECT a.run_id,
       min(a.window_start) FILTER (WHERE a.step = 'plan') AS window_start,
       max(a.window_end) AS window_end,
       coalesce(sum(a.rows) FILTER (WHERE a.step = 'load'), 0) AS rows_loaded,
       coalesce(bool_or(a.status = 'drift') FILTER (WHERE a.step LIKE 'reconcile%%'), false) AS drift_seen,
       bool_or(a.step LIKE 'reconcile%%') AS reconciled,
       bool_or(a.step = 'plan') AS is_sync,  -- else a run of the daily reconcile DAG
       coalesce(sum(a.seconds) FILTER (WHERE a.step = 'plan'), 0) AS plan_seconds,
       coalesce(sum(a.seconds) FILTER (WHERE a.step = 'extract'), 0) AS extract_seconds,
       coalesce(sum(a.seconds) FILTER (WHERE a.step = 'load' AND a.status <> 'failed'), 0) AS load_seconds,
       coalesce(sum(a.rows) FILTER (WHERE a.step = 'reconcile_in_flight'), 0) AS in_flight
FROM warehouse_sync.audit AS a
WHERE a.pipeline = %(pipeline)s AND a.step <> 'clean_staging'   -- clean_staging rows: window = cutoff
GROUP BY a.run_id
ORDER BY max(a.window_end) DESC, max(a.recorded_at) DESC
LIMIT %(limit)s
