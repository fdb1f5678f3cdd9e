"""Snapshot build table: a snapshot into a new target is copied into the warehouse while it is extracted.

Both modes' snapshots use it (cursor mode's :mod:`warehouse_sync.sync`, CDC mode's
:mod:`warehouse_sync.cdc`). A full snapshot into a target that does not exist yet needs no staging
table and no merge, and moving the rows twice one after the other (source → Parquet, then Parquet →
target) is what made it slow: measured on TPC-H SF 1 (``make bench-phases``), the binary COPY into
the target alone took 32% (orders) and 37% (lineitem) of the snapshot, after the whole extract. So
for such a run:

1. the plan creates the run's *build table* ``<schema>._ws_build_<target>`` (:func:`prepare`): the
   target's columns (warehouse types of :mod:`warehouse_sync.target.types`) and metadata columns,
   no index but the (partial, so empty) tombstone index, ``_run_id`` defaulting to the run's id (and,
   in CDC mode, ``_lsn`` defaulting to the snapshot rows' version), and a table comment that names
   the run, so a build table left by another run is never used;
2. each mapped extract, while it writes its Parquet file(s) page by page as always, copies the same
   pages into the build table (cursor mode: binary COPY of its Arrow pages,
   :func:`warehouse_sync.target.bulk_copy.copy_batches`; CDC mode: the source's own CSV text) in one
   warehouse transaction that commits only after its files have their final names. The source and
   warehouse servers and the extract's Python then work at the same time, and parallel extracts load
   in parallel. A retried extract first deletes its batch's rows (its key range, :func:`clear_batch`),
   so a retry never duplicates a row;
3. the load (:func:`finish`) builds the primary key and the cursor index on the filled table and
   renames it to the target, in one transaction: readers see no target, then the whole snapshot
   (the "temporary name + rename" of the rest of the sync).

Measured (``make bench``, TPC-H SF 1, plan + extract + load task seconds through the DAG, against
the binary COPY pipe): orders 3.45x before, 1.97x after; lineitem 2.57x before, 1.86x after (the
quieter of two runs; 2.30x and 2.15x in the other). Figures in ``bench/results/sync.md``; CDC mode's
in ``bench/results/cdc_sf1.md``.

The Parquet files are still written: if anything does not fit at load time (the target appeared,
the source's columns changed, a key repeats), the build table is dropped and the load copies the
files as before. A run whose target already exists (``full_snapshot`` of a loaded table) never
builds: it stages and merges its files.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from warehouse_sync.config import Pipeline
from warehouse_sync.db.catalog import Column, column_definitions, read_columns, relation_exists
from warehouse_sync.db.statements import DDL_LOCK, cursor_index, idents, load_sql, table_ident, tombstone_index
from warehouse_sync.model import TableRef
from warehouse_sync.run import Run
from warehouse_sync.target.types import warehouse_columns

__all__ = ["build_table", "prepare", "build_for", "clear_batch", "finish", "drop"]

log = logging.getLogger(__name__)

MARKER = "warehouse-sync snapshot build of run {run_id}"
DROP_BUILD = sql.SQL("DROP TABLE IF EXISTS {build}")
READ_MARKER = "SELECT obj_description(to_regclass(%s), 'pg_class')"
DELETE_BATCH = sql.SQL("DELETE FROM {build} WHERE {batch}")
VERSION_COLUMN = "_lsn"  # CDC mode's version column (warehouse_sync.cdc.apply)
DROP_VERSION_DEFAULT = sql.SQL("ALTER TABLE {build} ALTER COLUMN _lsn DROP DEFAULT;")


def build_table(pipeline: Pipeline) -> TableRef:
    """The build table of a pipeline's snapshot: ``<target schema>._ws_build_<target>`` (63 bytes at most)."""
    return TableRef(pipeline.target.schema, f"_ws_build_{pipeline.target.name}"[:63])


def prepare(run: Run, columns: list[Column], version: int | None = None) -> TableRef | None:
    """Creates the run's empty build table when the run is a snapshot into a target that does not exist.

    Safe to rerun: a build table left by an earlier attempt or run is dropped first.

    Args:
        run: The run (its warehouse connection is committed on return; its run id is the build
            table's ``_run_id`` default and its marker).
        columns: The source's columns (:func:`warehouse_sync.db.catalog.describe_source`).
        version: CDC mode: the snapshot rows' version (an LSN as ``bigint``), the default of the
            build table's ``_lsn`` column; ``None`` (cursor mode): no ``_lsn`` column.

    Returns:
        The build table, or ``None`` when the target exists (the run stages and merges its files).
    """
    warehouse, pipeline, run_id = run.warehouse, run.pipeline, run.run_id
    build = build_table(pipeline)
    with warehouse.transaction():
        warehouse.execute(DDL_LOCK)
        drop(warehouse, pipeline)  # an earlier attempt's, with its index names
        if relation_exists(warehouse, pipeline.target.schema, pipeline.target.name):
            return None
        tombstones = _free_name(warehouse, build.schema, tombstone_index(pipeline.target), "IF NOT EXISTS {}")
        warehouse.execute(load_sql(
            "target/create_build.sql", schema=sql.Identifier(build.schema), build=table_ident(build),
            column_defs=column_definitions(warehouse_columns(warehouse, columns)), run_id=sql.Literal(run_id),
            tombstones=tombstones, primary_key=idents(pipeline.primary_key),
            version=sql.SQL("") if version is None else sql.SQL(", {} bigint DEFAULT {}").format(
                sql.Identifier(VERSION_COLUMN), sql.Literal(version)),
            marker=sql.Literal(MARKER.format(run_id=run_id)),
        ))
    warehouse.commit()
    log.info("%s: snapshot into a new target: extracts copy into build table %s", pipeline.target, build)
    return build


def build_for(run: Run) -> TableRef | None:
    """The build table :func:`prepare` made for this run, or ``None`` (none, or another run's).

    Leaves the warehouse connection's transaction open (the caller copies or commits in it).
    """
    build = build_table(run.pipeline)
    found = run.warehouse.execute(READ_MARKER, (table_ident(build).as_string(run.warehouse),)).fetchone()
    return build if found is not None and found[0] == MARKER.format(run_id=run.run_id) else None


def clear_batch(warehouse: psycopg.Connection, build: TableRef, where: sql.Composable, params: dict[str, Any],
                what: str) -> int:
    """Deletes what an earlier attempt of a batch copied into the build table (rows deleted).

    The batch's rows are exactly the build rows its filter selects: an attempt copies what the
    filter selected at the source, with the same values. Runs in the caller's transaction.

    Args:
        warehouse: Warehouse connection (the caller's transaction).
        build: The run's build table (:func:`build_for`).
        where: The batch's predicate over the source's columns (its key range; cursor mode: and its window).
        params: The predicate's parameters.
        what: The batch, for the log line (``"orders batch 3"``).
    """
    deleted = warehouse.execute(DELETE_BATCH.format(build=table_ident(build), batch=where), params).rowcount
    if deleted:
        log.info("%s: removed %d rows an earlier attempt copied into %s", what, deleted, build)
    return max(deleted, 0)


def _free_name(warehouse: psycopg.Connection, schema: str, name: str, form: str) -> sql.Composable:
    """``form`` with the index name ``name`` (``"IF NOT EXISTS {}"``, ``"CONSTRAINT {}"``), or nothing when taken.

    Index names are unique per schema, and a target renamed aside (or another table whose name shares
    the first 63 bytes) keeps ours: a fixed name would then fail the build on every retry. Without a
    name PostgreSQL picks a free one (``_ws_build_<target>_<columns>_idx``), which the rename keeps.
    """
    if relation_exists(warehouse, schema, name):
        log.warning("%s.%s belongs to another table; the snapshot's index gets a name PostgreSQL picks", schema, name)
        return sql.SQL("")
    return sql.SQL(form).format(sql.Identifier(name))


def drop(warehouse: psycopg.Connection, pipeline: Pipeline) -> None:
    """Drops the pipeline's build table if there is one (in the caller's transaction)."""
    warehouse.execute(DROP_BUILD.format(build=table_ident(build_table(pipeline))))


def finish(run: Run, columns: list[Column]) -> bool:
    """Indexes this run's build table and renames it to the target, in the caller's transaction.

    Args:
        run: The run (its warehouse connection in the load's transaction).
        columns: The source's columns now; they must be the build table's.

    Returns:
        ``True`` when the target is now the build table. ``False`` when this run has no build table,
        or it cannot become the target (the target exists, the source's columns changed, a key
        repeats): the build table is then dropped and the caller copies the run's files instead.
    """
    warehouse, pipeline = run.warehouse, run.pipeline
    warehouse.execute(DDL_LOCK)
    build = build_for(run)
    if build is None:
        return False
    if relation_exists(warehouse, pipeline.target.schema, pipeline.target.name):
        log.warning("%s appeared after the plan; loading the snapshot's files instead", pipeline.target)
        drop(warehouse, pipeline)
        return False
    found = read_columns(warehouse, build)
    built = [c for c in found if not c.name.startswith("_")]
    wanted = warehouse_columns(warehouse, columns)
    if [(c.name, c.sql_type) for c in built] != [(c.name, c.sql_type) for c in wanted]:
        log.warning("%s: the source's columns changed during the snapshot; loading its files instead", pipeline.target)
        drop(warehouse, pipeline)
        return False
    schema = pipeline.target.schema
    try:
        with warehouse.transaction():
            warehouse.execute(load_sql(
                "target/finish_build.sql", build=table_ident(build), target_name=sql.Identifier(pipeline.target.name),
                primary_key_name=_free_name(warehouse, schema, f"{pipeline.target.name}_pkey"[:63], "CONSTRAINT {}"),
                primary_key=idents(pipeline.primary_key),
                cursor_index=_free_name(warehouse, schema, cursor_index(pipeline.target, pipeline.cursor),
                                        "IF NOT EXISTS {}"),
                cursor=sql.Identifier(pipeline.cursor),
                version=DROP_VERSION_DEFAULT.format(build=table_ident(build))
                if any(c.name == VERSION_COLUMN for c in found) else sql.SQL(""),
            ))
    except psycopg.errors.UniqueViolation:
        log.warning("%s: a key repeated across snapshot batches; loading its files instead", pipeline.target)
        drop(warehouse, pipeline)
        return False
    log.info("%s: build table %s indexed and renamed to the target", pipeline.target, build)
    return True

