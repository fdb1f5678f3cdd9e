-- The pipeline's staging size as its latest clean_staging task left it: bytes, files, retention (days), when.
SELECT (a.detail->>'kept_bytes')::bigint, (a.detail->>'kept_files')::bigint,
       (a.detail->>'retention_days')::integer, a.recorded_at
FROM warehouse_sync.audit AS a
WHERE a.pipeline = %(pipeline)s AND a.step = 'clean_staging'
ORDER BY a.recorded_at DESC, a.id DESC
LIMIT 1
