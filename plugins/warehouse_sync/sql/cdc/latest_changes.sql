-- Per key, the last staged change (op, commit LSN, commit time of the newest) with, per column, the
-- newest value a change carried, and the columns no change carried (_missing: the target keeps them).
SELECT {keys},
       (array_agg(_op ORDER BY _seq DESC))[1] AS _op,
       max(_lsn) AS _lsn,
       (array_agg(_commit_time ORDER BY _seq DESC))[1] AS _commit_time,
       {aggregates},
       array_remove(ARRAY[{missing}]::text[], NULL) AS _missing
FROM {staging}
GROUP BY {keys}
