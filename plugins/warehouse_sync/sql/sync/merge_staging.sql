-- Version-guarded upsert: insert new keys; replace a row only with a strictly newer version
-- (greater cursor). Replays, retries and out-of-order backfills therefore change nothing.
-- DISTINCT ON keeps the newest version when several files carry the same key.
INSERT INTO {table} AS t ({columns}, _synced_at, _run_id, _deleted_at)
SELECT DISTINCT ON ({primary_key}) {columns}, now(), %(run_id)s, NULL
FROM {staging}
ORDER BY {primary_key}, {cursor} DESC
ON CONFLICT ({primary_key}) DO UPDATE
SET {assignments}, _synced_at = EXCLUDED._synced_at, _run_id = EXCLUDED._run_id, _deleted_at = NULL
WHERE t.{cursor} < EXCLUDED.{cursor}
