-- One slice of the changes: the copy's pgoutput messages of transactions committed before the run's LSN (every
-- pending one when upto is NULL), stopping after the transaction that brings the count to nchanges. Consumes
-- the copy (the next call continues after it), never the live slot.
SELECT data
FROM pg_logical_slot_get_binary_changes(%(copy)s, %(upto)s::pg_lsn, %(nchanges)s,
                                        'proto_version', '1', 'publication_names', %(publication)s)
