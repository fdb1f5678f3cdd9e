-- Rows in a window of the cursor.
SELECT count(*) FROM {table} WHERE {window}
