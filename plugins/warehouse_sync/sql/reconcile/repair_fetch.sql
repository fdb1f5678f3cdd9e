-- The source's current rows for a list of keys, streamed as CSV for COPY into the warehouse.
COPY (
    SELECT {columns}
    FROM {table} AS r
    JOIN unnest({arrays}) AS k({key_names}) ON {join}
) TO STDOUT (FORMAT csv)
