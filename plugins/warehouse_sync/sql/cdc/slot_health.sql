-- One pipeline's logical replication slot: WAL status, where the next read starts, the WAL the
-- source keeps for it (bytes from its restart_lsn to the current insert position), whether it is in use.
SELECT wal_status,
       confirmed_flush_lsn::text,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained_wal_bytes,
       active
FROM pg_replication_slots
WHERE slot_name = %(slot)s AND slot_type = 'logical'
