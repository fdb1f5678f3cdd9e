-- Row count and an order-independent checksum of a set of rows: the sum of the first 64 bits of
-- md5(row text) over every row. ROW(...)::text is PostgreSQL's canonical text of all the listed
-- columns (NULL and '' differ), identical in both databases for identical types in a UTC session.
SELECT count(*) AS row_count,
       coalesce(sum(('x' || substr(md5(ROW({columns})::text), 1, 16))::bit(64)::bigint), 0) AS checksum
FROM {table} AS r
WHERE {window} {extra}
