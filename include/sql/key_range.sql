-- The first key column's range and the row count below %(as_of)s.
SELECT min(r.{k1}), max(r.{k1}), count(*) FROM {table} AS r WHERE r.{cursor} < %(as_of)s {extra}
