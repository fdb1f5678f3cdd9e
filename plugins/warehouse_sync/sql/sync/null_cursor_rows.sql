-- Rows whose cursor is NULL: in no window and no snapshot (read only when refusing a nullable cursor;
-- the source's (cursor, key) index answers it).
SELECT count(*) FROM {table} WHERE {cursor} IS NULL
