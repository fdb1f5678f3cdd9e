-- Rows deleted at the source: kept for analysts, marked with _deleted_at.
UPDATE {table} AS r SET _deleted_at = now(), _run_id = %(run_id)s
FROM unnest({arrays}) AS k({key_names})
WHERE {join} AND r._deleted_at IS NULL
