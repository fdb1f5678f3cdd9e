-- Rows deleted at the source, for tables configured with delete_mode: hard.
DELETE FROM {table} AS r
USING unnest({arrays}) AS k({key_names})
WHERE {join}
