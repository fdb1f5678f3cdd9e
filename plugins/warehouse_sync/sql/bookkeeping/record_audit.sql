INSERT INTO warehouse_sync.audit
    (pipeline, run_id, step, batch_index, window_start, window_end, rows, bytes, seconds, status, detail)
VALUES
    (%(pipeline)s, %(run_id)s, %(step)s, %(batch_index)s, %(window_start)s, %(window_end)s,
     %(rows)s, %(bytes)s, %(seconds)s, %(status)s, %(detail)s)
