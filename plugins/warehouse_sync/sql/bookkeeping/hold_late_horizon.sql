-- Remember the oldest still-open source transaction seen while reading a window (keeps the oldest).
INSERT INTO warehouse_sync.sync_state AS s (pipeline, late_horizon)
VALUES (%(pipeline)s, %(horizon)s)
ON CONFLICT (pipeline) DO UPDATE
SET late_horizon = LEAST(s.late_horizon, EXCLUDED.late_horizon), updated_at = now()
