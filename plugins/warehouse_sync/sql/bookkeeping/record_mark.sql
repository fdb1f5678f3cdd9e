-- Record the mark of a window end past every recorded one; marks never go down (the row holding the
-- greatest cursor may have been deleted). Nothing is written when a mark at or after it exists.
INSERT INTO warehouse_sync.cursor_marks (pipeline, window_end, mark, read_at)
SELECT %(pipeline)s, %(at)s,
       GREATEST(%(mark)s::bigint, (SELECT max(m.mark) FROM warehouse_sync.cursor_marks AS m
                                   WHERE m.pipeline = %(pipeline)s)),
       %(read_at)s
WHERE NOT EXISTS (SELECT 1 FROM warehouse_sync.cursor_marks AS m
                  WHERE m.pipeline = %(pipeline)s AND m.window_end >= %(at)s)
ON CONFLICT (pipeline, window_end) DO NOTHING
