-- One pass over one column: an update that changed the key ('K' at _seq, staged right after the delete 'D' of
-- its old key at _seq - 1) and left the column's TOASTed value unchanged gets the value the old key's row had
-- just before that delete: the newest earlier staged change of the old key that carried it, else (no such
-- change in the run) the target's row of the old key, which holds the state the last confirmed run left. A
-- 'K' row of the old key that still waits for its own value is resolved first: run passes until none changes
-- a row (one pass per link of a chain of key changes within the run).
UPDATE {staging} AS k
SET {column} = CASE WHEN p._seq IS NOT NULL THEN p.{column} ELSE CAST(t.{column} AS text) END,
    _unchanged = array_remove(k._unchanged, {label})
FROM {staging} AS d
LEFT JOIN LATERAL (
    SELECT e._seq, e._op, e._unchanged, e.{column}
    FROM {staging} AS e
    WHERE {same_key} AND e._seq < d._seq AND e._op <> 'D'
      AND (e._op = 'K' OR e._unchanged IS NULL OR NOT {label} = ANY(e._unchanged))
    ORDER BY e._seq DESC
    LIMIT 1
) AS p ON true
LEFT JOIN {table} AS t ON {target_key}
WHERE d._seq = k._seq - 1 AND d._op = 'D' AND k._op = 'K' AND {label} = ANY(k._unchanged)
  AND NOT coalesce(p._op = 'K' AND {label} = ANY(p._unchanged), false)
