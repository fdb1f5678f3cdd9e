-- Back-fill columns the load just added: a row already in the warehouse gets the source's values
-- when it holds the source's current version (same cursor). A row whose source version is newer
-- gets them when that version is merged (by this load or a later window), never an older value.
UPDATE {table} AS t
SET {assignments}
FROM {backfill} AS b
WHERE {join} AND t.{cursor} = b.{cursor}
