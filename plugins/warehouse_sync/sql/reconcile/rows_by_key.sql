-- Full rows for a list of keys (text form, for column-level comparison and for repair).
SELECT {columns}
FROM {table} AS r
JOIN unnest({arrays}) AS k({key_names}) ON {join}
