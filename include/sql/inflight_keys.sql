-- Keys whose current source version is at or past the window end: in flight, not drift.
COPY (
    SELECT {primary_key} FROM {table} WHERE {cursor} >= %(window_end)s LIMIT %(limit)s
) TO STDOUT (FORMAT csv)
