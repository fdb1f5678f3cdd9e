-- Both ends of the first key column (from the primary-key index, soft-deleted rows included: the
-- bounds only have to cover every key) and the planner's row estimate (sets the first level's cut).
SELECT min(r.{k1}), max(r.{k1}),
       (SELECT greatest(c.reltuples, 0)::bigint FROM pg_catalog.pg_class AS c WHERE c.oid = to_regclass(%(table_name)s))
FROM {table} AS r
