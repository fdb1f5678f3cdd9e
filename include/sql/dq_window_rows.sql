-- The rows a run validates: the live target rows whose cursor is in the run's window.
SELECT * FROM {table} AS r WHERE r._deleted_at IS NULL AND {window}
