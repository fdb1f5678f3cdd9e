-- The latest mark read at or before an instant: a writer that started after read_at took a greater value.
SELECT mark, read_at FROM warehouse_sync.cursor_marks
WHERE pipeline = %(pipeline)s AND read_at <= %(at)s
ORDER BY read_at DESC, window_end DESC
LIMIT 1
