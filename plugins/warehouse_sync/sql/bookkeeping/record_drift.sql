INSERT INTO warehouse_sync.drift_history
    (pipeline, run_id, scope, as_of, segments, missing, extra, changed, repaired, refused, seconds, sample)
VALUES
    (%(pipeline)s, %(run_id)s, %(scope)s, %(as_of)s, %(segments)s, %(missing)s, %(extra)s, %(changed)s,
     %(repaired)s, %(refused)s, %(seconds)s, %(sample)s)
