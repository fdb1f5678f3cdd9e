-- Refresh-function 1 rows: plain inserts, so the trigger stamps them with now().
INSERT INTO {table} SELECT s.* FROM {staging} AS s
