-- A snapshot's build table: the target's columns and metadata columns, and no index but the partial
-- index of tombstones, which no copied row enters (a heap takes COPY fastest; the other indexes are
-- built once it is full). The run's extracts copy into it; the load indexes it and renames it to the
-- target. _run_id defaults to the run's id, and {version} is nothing (cursor mode) or
-- ", _lsn bigint DEFAULT <the snapshot rows' version>" (CDC mode), so the extracts copy the source's
-- columns only. The caller drops a build table left by an earlier attempt first. {tombstones} is
-- IF NOT EXISTS "<target>_tombstones_idx", or nothing when another relation of the schema has that
-- name (a target renamed aside keeps its indexes' names): PostgreSQL then picks a free name.
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE {build} (
    {column_defs},
    _synced_at  timestamptz NOT NULL DEFAULT now(),
    _run_id     text DEFAULT {run_id},
    _deleted_at timestamptz
    {version}
);
CREATE INDEX {tombstones} ON {build} ({primary_key}) WHERE _deleted_at IS NOT NULL;
COMMENT ON TABLE {build} IS {marker};
