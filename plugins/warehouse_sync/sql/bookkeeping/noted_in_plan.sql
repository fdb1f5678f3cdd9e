-- Whether a plan of this pipeline already recorded the note detail.<note>.blocker = <blocker> in its
-- audit row (in a window ending at or after since: the index on (pipeline, window_end) bounds the read).
-- Binds: pipeline, note, blocker, since.
SELECT EXISTS (
    SELECT 1
    FROM warehouse_sync.audit
    WHERE pipeline = %(pipeline)s
      AND window_end >= %(since)s
      AND step = 'plan'
      AND detail -> %(note)s ->> 'blocker' = %(blocker)s
)
