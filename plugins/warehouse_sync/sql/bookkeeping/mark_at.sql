-- The mark a plan recorded for this exact window end, if any.
SELECT mark, read_at FROM warehouse_sync.cursor_marks
WHERE pipeline = %(pipeline)s AND window_end = %(at)s
