-- Whether a snapshot's window is every row of the target: no soft-deleted row (the partial tombstone
-- index answers at once) and no row at or past the window end (one probe of the cursor index).
SELECT NOT EXISTS (SELECT 1 FROM {table} WHERE _deleted_at IS NOT NULL)
   AND NOT EXISTS (SELECT 1 FROM {table} WHERE {cursor} >= %(window_end)s)
