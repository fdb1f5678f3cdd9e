-- The slot's pgoutput messages of transactions committed before the run's LSN (every pending one when
-- upto is NULL), without moving the slot (pg_replication_slot_advance confirms them after the warehouse commit).
SELECT data
FROM pg_logical_slot_peek_binary_changes(%(slot)s, %(upto)s::pg_lsn, NULL,
                                         'proto_version', '1', 'publication_names', %(publication)s)
