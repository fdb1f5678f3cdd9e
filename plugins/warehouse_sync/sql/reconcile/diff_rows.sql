-- Per-row hashes of one leaf segment, to compare key by key.
SELECT {keys}, hash_record_extended(ROW({columns}), 0) AS row_hash
FROM {table} AS r
WHERE r.{k1} >= %(lo)s AND r.{k1} < %(hi)s AND r.{cursor} < %(as_of)s {extra}
