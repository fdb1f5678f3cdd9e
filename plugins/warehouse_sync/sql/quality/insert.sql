INSERT INTO warehouse_sync.dq_results
    (pipeline, dag_id, run_id, window_start, window_end, expectation, label, columns, severity, success,
     observed_value, element_count, unexpected_count, unexpected_percent, sample, docs_path)
VALUES (%(pipeline)s, %(dag_id)s, %(run_id)s, %(window_start)s, %(window_end)s, %(expectation)s, %(label)s,
        %(columns)s, %(severity)s, %(success)s, %(observed_value)s, %(element_count)s, %(unexpected_count)s,
        %(unexpected_percent)s, %(sample)s, %(docs_path)s)
