-- Rows loaded per window over the last %(days)s days (incremental windows only), oldest first.
SELECT a.window_end, sum(a.rows) AS rows_loaded
FROM warehouse_sync.audit AS a
WHERE a.pipeline = %(pipeline)s AND a.step = 'load' AND a.status = 'ok' AND a.window_start IS NOT NULL
  AND a.window_end >= (SELECT max(window_end) FROM warehouse_sync.audit
                       WHERE pipeline = %(pipeline)s AND step <> 'clean_staging')
                      - make_interval(days => %(days)s)
GROUP BY a.window_end
ORDER BY a.window_end
