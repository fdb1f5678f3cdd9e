-- After a window [covered_from, window_end) is loaded: forget a late horizon that window covered,
-- keep the one this run itself saw (if any), and advance the high watermark.
INSERT INTO warehouse_sync.sync_state AS s (pipeline, late_horizon, high_watermark)
VALUES (%(pipeline)s, %(own_horizon)s, %(window_end)s)
ON CONFLICT (pipeline) DO UPDATE
SET late_horizon = CASE
        WHEN s.late_horizon IS NOT NULL
         AND (%(covered_from)s::timestamptz IS NULL OR s.late_horizon >= %(covered_from)s::timestamptz)
         AND s.late_horizon < %(window_end)s
        THEN %(own_horizon)s::timestamptz
        ELSE LEAST(s.late_horizon, %(own_horizon)s::timestamptz)
    END,
    high_watermark = GREATEST(s.high_watermark, EXCLUDED.high_watermark),
    updated_at = now()
