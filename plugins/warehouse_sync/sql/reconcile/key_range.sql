-- The first key column's range below %(as_of)s (both ends from the key's index) and the planner's
-- row estimate of the table (it only sets how many segments the first level cuts).
SELECT min(r.{k1}), max(r.{k1}),
       (SELECT greatest(c.reltuples, 0)::bigint FROM pg_catalog.pg_class AS c WHERE c.oid = to_regclass(%(table_name)s))
FROM {table} AS r WHERE r.{cursor} < %(as_of)s {extra}
