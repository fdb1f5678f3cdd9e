-- A temporary table shaped like {table} without its cursor, for COPY of a dbgen .tbl file.
CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT * FROM {table} WITH NO DATA;
ALTER TABLE {staging} DROP COLUMN updated_at;
