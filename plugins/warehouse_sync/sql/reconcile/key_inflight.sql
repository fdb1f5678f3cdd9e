-- Of the given keys, those whose source row is at or past %(as_of)s: in flight (changed after the
-- window), not drift. Reads the heap, but only for keys the key check found on the source alone.
SELECT {key_columns}
FROM {table} AS r
JOIN unnest({arrays}) AS k({key_names}) ON {join}
WHERE r.{cursor} >= %(as_of)s
