-- Repair: the source is the system of record, so its current row replaces the warehouse's whatever
-- the cursor says (cursors can go backwards), and a soft-deleted row that reappeared is restored.
INSERT INTO {table} AS t ({columns}, _synced_at, _run_id, _deleted_at)
SELECT {columns}, now(), %(run_id)s, NULL FROM {staging}
ON CONFLICT ({primary_key}) DO UPDATE
SET {assignments}, _synced_at = EXCLUDED._synced_at, _run_id = EXCLUDED._run_id, _deleted_at = NULL
WHERE ({target_row}, t._deleted_at IS NOT NULL) IS DISTINCT FROM ({excluded_row}, false)
