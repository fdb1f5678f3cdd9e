-- Staging table for one load: same columns as the target, gone at commit.
CREATE TEMP TABLE {staging} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP
