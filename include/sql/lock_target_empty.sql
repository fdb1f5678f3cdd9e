-- Blocks other writers of the target until commit, then tells whether it has no row at all:
-- an empty target takes the snapshot's rows by a plain COPY (no staging, no merge).
LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE;
