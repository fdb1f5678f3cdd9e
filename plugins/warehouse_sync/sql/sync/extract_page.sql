-- One keyset page of a batch, streamed as CSV (NULL = empty unquoted, '' = "").
-- Pages continue strictly after the last key read; never OFFSET.
COPY (
    SELECT {columns}
    FROM {table}
    WHERE {batch} {after}
    ORDER BY {keys}
    LIMIT %(page_size)s
) TO STDOUT (FORMAT csv)
