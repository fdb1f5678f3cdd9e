-- Turns a snapshot's build table into the target, in the load's transaction: the indexes
-- target/create_target.sql gives a target (primary key; the tombstones' index exists already), the cursor
-- index, then the name.
ALTER TABLE {build} ADD CONSTRAINT {primary_key_name} PRIMARY KEY ({primary_key});
CREATE INDEX {cursor_index} ON {build} ({cursor});
ALTER TABLE {build} ALTER COLUMN _run_id DROP DEFAULT;
COMMENT ON TABLE {build} IS NULL;
ALTER TABLE {build} RENAME TO {target_name};
