-- A CDC pipeline's slot as its latest run (or daily reconcile) measured it: retained WAL bytes, lag
-- seconds, changes applied, status (warn: over a threshold), when.
SELECT a.bytes, (a.detail->>'lag_seconds')::double precision, a.rows, a.status, a.recorded_at
FROM warehouse_sync.audit AS a
WHERE a.pipeline = %(pipeline)s AND a.step = 'cdc_slot'
ORDER BY a.recorded_at DESC, a.id DESC
LIMIT 1
