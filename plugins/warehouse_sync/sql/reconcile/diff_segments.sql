-- Row count and checksum per key segment: the first key column's range [%(lo)s, %(hi)s) cut into
-- %(parts)s equal-width parts, in one scan. Rows at or past %(as_of)s are in flight and not counted.
SELECT ((r.{k1} - %(lo)s) * %(parts)s) / (%(hi)s - %(lo)s) AS part,
       count(*) AS row_count,
       sum(hash_record_extended(ROW({columns}), 0)) AS checksum
FROM {table} AS r
WHERE r.{k1} >= %(lo)s AND r.{k1} < %(hi)s AND r.{cursor} < %(as_of)s {extra}
GROUP BY 1
