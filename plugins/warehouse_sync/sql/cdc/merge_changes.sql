-- Apply one run's changes (staged as text) to the target, with the change's commit LSN as the version:
-- per key, the last change wins (op, LSN, commit time of the newest); each column takes the newest value
-- a change carried, and a column no change of the window carried (an unchanged TOAST value) keeps the
-- target's. A target row at the same or a newer LSN is left alone, so a replay changes nothing.
MERGE INTO {table} AS t
USING (
    SELECT {keys},
           (array_agg(_op ORDER BY _seq DESC))[1] AS _op,
           max(_lsn) AS _lsn,
           (array_agg(_commit_time ORDER BY _seq DESC))[1] AS _commit_time,
           {aggregates},
           array_remove(ARRAY[{missing}]::text[], NULL) AS _missing
    FROM {staging}
    GROUP BY {keys}
) AS s
ON {join}
WHEN MATCHED AND t._lsn >= s._lsn THEN
    DO NOTHING
WHEN MATCHED AND s._op = 'D' THEN
    {delete_action}
WHEN MATCHED THEN
    UPDATE SET {assignments}, _lsn = s._lsn, _deleted_at = NULL, _synced_at = now(), _run_id = %(run_id)s
WHEN NOT MATCHED AND s._op <> 'D' THEN
    INSERT ({columns}, _lsn, _synced_at, _run_id) VALUES ({values}, s._lsn, now(), %(run_id)s)
