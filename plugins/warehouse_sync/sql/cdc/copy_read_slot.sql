-- A temporary copy of the pipeline's slot (same restart_lsn and confirmed position), owned by this session and
-- dropped at its end: the extract consumes the copy slice by slice while the live slot stays where the last
-- warehouse commit confirmed it.
SELECT slot_name::text FROM pg_copy_logical_replication_slot(%(slot)s, %(copy)s, true)
