-- The keys (and their 64-bit hashes) of the leaf ranges [lo, hi), from the primary-key index only;
-- live is false for the warehouse's soft-deleted keys (the side filter, from their partial index).
SELECT {keys}, {key_hash} AS h, true AS live
FROM unnest(%(los)s::int8[], %(his)s::int8[]) AS s(lo, hi)
JOIN {table} AS r ON r.{k1} >= s.lo AND r.{k1} < s.hi
UNION ALL
SELECT {keys}, {key_hash}, false
FROM unnest(%(los)s::int8[], %(his)s::int8[]) AS s(lo, hi)
JOIN {table} AS r ON r.{k1} >= s.lo AND r.{k1} < s.hi
WHERE {extra}
