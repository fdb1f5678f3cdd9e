-- Turns a snapshot's build table into the target, in the load's transaction: the indexes
-- target/create_target.sql gives a target (primary key; the tombstones' index exists already), the cursor
-- index, then the name. {primary_key_name} is CONSTRAINT "<target>_pkey" and {cursor_index}
-- IF NOT EXISTS "<target>_<cursor>_idx", each or nothing when another relation of the schema has the
-- name (PostgreSQL then picks a free one), so a retry never fails on a name it cannot own.
-- {version} is nothing, or (CDC mode) "ALTER TABLE <build> ALTER COLUMN _lsn DROP DEFAULT;".
ALTER TABLE {build} ADD {primary_key_name} PRIMARY KEY ({primary_key});
CREATE INDEX {cursor_index} ON {build} ({cursor});
ALTER TABLE {build} ALTER COLUMN _run_id DROP DEFAULT;
{version}
COMMENT ON TABLE {build} IS NULL;
ALTER TABLE {build} RENAME TO {target_name};
