-- Target table: the source's columns with the same names and types, plus metadata columns (_*).
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {table} (
    {column_defs},
    _synced_at  timestamptz NOT NULL DEFAULT now(),
    _run_id     text,
    _deleted_at timestamptz,
    PRIMARY KEY ({primary_key})
);
-- Soft-deleted keys only (empty for a new table, so free to build now): the per-run key check of
-- reconcile/keys.py subtracts them with an Index Only Scan.
CREATE INDEX IF NOT EXISTS {tombstones} ON {table} ({primary_key}) WHERE _deleted_at IS NOT NULL;
