-- Freshness (seconds from the newest source change in the target to the measurement) over the latest
-- measurements (loads and daily health checks), oldest first.
SELECT recorded_at, (detail->>'lag_seconds')::double precision AS lag_seconds
FROM (SELECT recorded_at, detail FROM warehouse_sync.audit
      WHERE pipeline = %(pipeline)s AND step = 'freshness' AND detail->>'lag_seconds' IS NOT NULL
      ORDER BY id DESC
      LIMIT %(limit)s) AS latest
ORDER BY recorded_at
