-- Row count and an order-independent checksum of a set of rows: the sum of 64-bit row hashes
-- (hash_record_extended: each column hashed by its type's own hash function, the one hash
-- partitioning relies on; columns of types without one are passed as text).
SELECT count(*) AS row_count,
       coalesce(sum(hash_record_extended(ROW({columns}), 0)), 0) AS checksum
FROM {table} AS r
WHERE {window} {extra}
