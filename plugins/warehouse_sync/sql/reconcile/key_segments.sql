-- Per-run delete detection, one level: for each range s.i = [s.lo, s.hi) cut into s.parts equal
-- parts, the live key count and the sum of 64-bit hashes of the primary key only (no other column),
-- so both branches are answered by an Index Only Scan: the primary-key index, and (warehouse side,
-- its filter is r._deleted_at IS NOT NULL) the partial index of soft-deleted keys, subtracted.
-- On the source that filter is false and the second branch is never run.
SELECT i, part,
       count(*) FILTER (WHERE live) - count(*) FILTER (WHERE NOT live) AS key_count,
       coalesce(sum(h) FILTER (WHERE live), 0) - coalesce(sum(h) FILTER (WHERE NOT live), 0) AS key_hash
FROM (
    SELECT s.i, ((r.{k1} - s.lo) * s.parts) / (s.hi - s.lo) AS part, true AS live,
           {key_hash} AS h
    FROM unnest(%(los)s::int8[], %(his)s::int8[], %(parts)s::int8[]) WITH ORDINALITY AS s(lo, hi, parts, i)
    JOIN {table} AS r ON r.{k1} >= s.lo AND r.{k1} < s.hi
    UNION ALL
    SELECT s.i, ((r.{k1} - s.lo) * s.parts) / (s.hi - s.lo), false, {key_hash}
    FROM unnest(%(los)s::int8[], %(his)s::int8[], %(parts)s::int8[]) WITH ORDINALITY AS s(lo, hi, parts, i)
    JOIN {table} AS r ON r.{k1} >= s.lo AND r.{k1} < s.hi
    WHERE {extra}
) AS x
GROUP BY i, part
