-- Per-row hashes of one leaf segment, to compare key by key.
SELECT {keys}, ('x' || substr(md5(ROW({columns})::text), 1, 16))::bit(64)::bigint AS row_hash
FROM {table} AS r
WHERE r.{k1} >= %(lo)s AND r.{k1} < %(hi)s AND r.{cursor} < %(as_of)s {extra}
