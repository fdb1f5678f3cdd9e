-- When the newest loaded integer cursor value was read by a plan: the read_at of the latest mark at or below it.
SELECT max(read_at) FROM warehouse_sync.cursor_marks
WHERE pipeline = %(pipeline)s AND mark <= %(newest)s::bigint + 1
