-- Apply one run's changes (staged as text) to the target, with the change's commit LSN as the version.
-- The USING rows are one per key (cdc/latest_changes.sql; a snapshot's rows as they are). A column in
-- _missing (an unchanged TOAST value, or absent from the change) keeps the target's value. A target row
-- at the same or a newer LSN is left alone, so a replay changes nothing.
MERGE INTO {table} AS t
USING ({changes}) AS s
ON {join}
WHEN MATCHED AND t._lsn >= s._lsn THEN
    DO NOTHING
WHEN MATCHED AND s._op = 'D' THEN
    {delete_action}
WHEN MATCHED THEN
    UPDATE SET {assignments}, _lsn = s._lsn, _deleted_at = NULL, _synced_at = now(), _run_id = %(run_id)s
WHEN NOT MATCHED AND s._op <> 'D' THEN
    INSERT ({columns}, _lsn, _synced_at, _run_id) VALUES ({values}, s._lsn, now(), %(run_id)s)
