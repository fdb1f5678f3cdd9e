-- A partial index of the soft-deleted keys: small (only tombstones), so the per-run key check can
-- subtract them by an Index Only Scan instead of reading _deleted_at from every row's heap tuple.
CREATE INDEX IF NOT EXISTS {index} ON {table} ({primary_key}) WHERE _deleted_at IS NOT NULL
