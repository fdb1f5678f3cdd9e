-- The newest source change the target holds (its greatest cursor; the cursor index makes it one probe) and now.
SELECT max({cursor}), now() FROM {table}
