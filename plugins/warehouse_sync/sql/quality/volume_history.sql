-- Row counts of this pipeline's recent windows (not snapshots, not this run), newest first.
SELECT element_count FROM warehouse_sync.dq_results
WHERE pipeline = %(pipeline)s AND expectation = 'expect_table_row_count_to_be_between'
  AND run_id <> %(run_id)s AND window_start IS NOT NULL AND element_count IS NOT NULL
ORDER BY window_end DESC
LIMIT %(limit)s
