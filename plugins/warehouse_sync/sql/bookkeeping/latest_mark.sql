-- The latest window end a plan recorded a mark for.
SELECT max(window_end) FROM warehouse_sync.cursor_marks WHERE pipeline = %(pipeline)s
