-- The latest run still loading: planned, no load row yet (not failed); its batches extracted so far and their rows.
SELECT p.run_id, p.window_start, p.window_end, (p.detail->>'batches')::int AS batches,
       count(e.id) AS extracted, coalesce(sum(e.rows), 0) AS rows_so_far, p.recorded_at
FROM (SELECT * FROM warehouse_sync.audit WHERE pipeline = %(pipeline)s AND step = 'plan'
      ORDER BY id DESC LIMIT 1) AS p
LEFT JOIN warehouse_sync.audit AS e
       ON e.pipeline = p.pipeline AND e.run_id = p.run_id AND e.step = 'extract' AND e.status = 'ok'
WHERE NOT EXISTS (SELECT FROM warehouse_sync.audit AS l
                  WHERE l.pipeline = p.pipeline AND l.run_id = p.run_id AND l.step = 'load')
GROUP BY p.run_id, p.window_start, p.window_end, p.detail, p.recorded_at
