-- Per key, the last staged change as it is: the fast form of cdc/latest_changes.sql when every staged
-- change carried every column (no _unchanged), so the newest change alone holds the key's newest values.
-- Its LSN is the key's greatest: _seq follows commit order.
SELECT DISTINCT ON ({keys}) _op, _lsn, _commit_time, {columns}, ARRAY[]::text[] AS _missing
FROM {staging}
ORDER BY {keys}, _seq DESC
