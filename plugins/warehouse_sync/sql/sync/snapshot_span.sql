-- What a snapshot's batches are cut from when the first key column is an integer: whether the window
-- has a row (a probe of the cursor index), the planner's row estimate, and the column's smallest and
-- largest value (two probes of the key index). No scan.
SELECT EXISTS (SELECT 1 FROM {table} WHERE {window}), c.reltuples::bigint,
       (SELECT min({first}) FROM {table}), (SELECT max({first}) FROM {table})
FROM pg_class AS c
WHERE c.oid = to_regclass(%(table)s)
