-- The warehouse side of window queries (validate, the window reconcile) reads by cursor: index it.
-- Built once, after the first load (a snapshot copies faster into a table without it).
CREATE INDEX IF NOT EXISTS {index} ON {table} ({cursor})
