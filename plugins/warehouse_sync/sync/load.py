"""Load: bulk-copy a window's Parquet files into a staging table and merge them into the target.

A snapshot into a new target was already copied into its build table by the extracts: the load
indexes it and renames it to the target (:mod:`.snapshot`). A snapshot into an existing empty
target copies its files straight into it; no staging table, no merge. The copy itself is
:mod:`.bulk_copy`'s (binary COPY encoded from Arrow by ``pgpq``, CSV for types without an exact
binary form).

All in one warehouse transaction: ``CREATE TEMP TABLE … ON COMMIT DROP``, ``COPY … FROM STDIN``
(never row-by-row ``INSERT``), then one version-guarded ``INSERT … ON CONFLICT DO UPDATE … WHERE
target.cursor < excluded.cursor`` (``warehouse_sync/sql/merge_staging.sql``). A failure anywhere rolls
everything back, and a replay of the same files changes nothing.

The target keeps the source's column names and types and adds ``_synced_at``, ``_run_id`` and
``_deleted_at``. When source and target columns differ, :mod:`.schema` decides under the pipeline's
``schema_changes`` policy and this module runs the decision in the load's one transaction: ``ALTER
TABLE`` (add a column, widen a type, drop the ``NOT NULL`` of a column gone from the source), then
the back-fill of added columns for the rows already in the target (key, cursor and the new columns
streamed from the source by ``COPY`` into a temporary table, then one ``UPDATE`` of the rows whose
cursor equals the source's), then the copy and merge of the shared columns, then the
``warehouse_sync.schema_history`` rows. A change the policy rejects is a :class:`SchemaChanged`
error that names table, column, both types and the way out, raised before anything is written, so a
source schema change never breaks the sink silently.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import psycopg
from psycopg import sql

from warehouse_sync.bookkeeping import schema_history
from warehouse_sync.config import Pipeline
from warehouse_sync.db.catalog import (Column, TableNotFound, column_definitions, read_columns, relation_exists,
                                       row_estimate)
from warehouse_sync.db.statements import (COPY_CSV, CREATE_STAGING, DDL_LOCK, cursor_index, idents, load_sql,
                                          table_ident, tombstone_index)
from warehouse_sync.sync.snapshot import finish as finish_build
from warehouse_sync.sync.bulk_copy import copy_files, file_rows
from warehouse_sync.sync.schema import ColumnChange, SchemaChanged, SchemaDecision, decide, describe_schema_changes

__all__ = ["LoadResult", "ensure_target", "load_files", "describe_schema_changes", "SchemaChangeHandler"]

log = logging.getLogger(__name__)

METADATA_PREFIX = "_"
LOCK_TARGET = sql.SQL("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
TARGET_IS_EMPTY = sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {table})")
# Window queries on the warehouse side (validate, the window comparison) read by cursor. Built at the
# end of the first load's transaction (a snapshot copies faster into a table without it).
CURSOR_INDEX = sql.SQL("CREATE INDEX IF NOT EXISTS {index} ON {table} ({cursor})")
ALTER_TARGET = sql.SQL("ALTER TABLE {table} {actions}")
CREATE_BACKFILL = sql.SQL("CREATE TEMP TABLE {backfill} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA")
FETCH_BACKFILL = sql.SQL("COPY (SELECT {columns} FROM {table}) TO STDOUT (FORMAT csv)")

# Called after the load with the schema changes it recorded (the DAG passes an alert through the notifiers).
SchemaChangeHandler = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class LoadResult:
    """Rows staged (read from files), rows merged (inserted or replaced by a newer version), seconds;
    rows back-filled (existing rows given the values of added columns) and the schema changes recorded."""

    staged: int
    merged: int
    seconds: float
    backfilled: int = 0
    schema_changes: tuple[ColumnChange, ...] = ()

    @property
    def unchanged(self) -> int:
        """Rows skipped by the version guard (already present at the same or a newer version)."""
        return self.staged - self.merged


def ensure_target(conn: psycopg.Connection, pipeline: Pipeline, source_columns: list[Column]) -> SchemaDecision:
    """Creates the target table if missing, else compares its columns with the source's.

    Returns:
        What the load does about the differences (:func:`warehouse_sync.sync.schema.decide` under
        the pipeline's ``schema_changes``); no change for a table just created. An existing target is
        not altered here: the load runs the decision in its transaction.
    """
    try:
        target_columns = [c for c in read_columns(conn, pipeline.target) if not c.name.startswith(METADATA_PREFIX)]
    except TableNotFound:
        definitions = column_definitions(source_columns)
        with conn.transaction():
            conn.execute(DDL_LOCK)
            conn.execute(load_sql(
                "sync/create_target.sql", schema=sql.Identifier(pipeline.target.schema), table=table_ident(pipeline.target),
                column_defs=definitions, primary_key=idents(pipeline.primary_key),
                tombstones=sql.Identifier(tombstone_index(pipeline.target)),
            ))
        conn.commit()
        log.info("created target table %s", pipeline.target)
        return decide(source_columns, source_columns, pipeline.schema_changes)
    conn.commit()
    return decide(source_columns, target_columns, pipeline.schema_changes)


def rejection_message(pipeline: Pipeline, decision: SchemaDecision) -> str:
    """The :class:`SchemaChanged` message: table, each rejected column with both types, and the way out."""
    rejected = decision.rejected
    lines = "; ".join(f"{c.describe()} ({c.detail})" for c in rejected)
    retyped = [c for c in rejected if c.change in ("narrowed", "incompatible", "widened")]
    ways = []
    if retyped:
        ways.append("change the source column back, or alter the target yourself ("
                    + "; ".join(f"ALTER TABLE {pipeline.target} ALTER COLUMN {c.column} TYPE {c.new_type}"
                                for c in retyped) + ")"
                    + (", or set schema_changes: evolve to widen it"
                       if decision.policy != "evolve" and any(c.change == "widened" for c in retyped) else ""))
    if decision.policy == "freeze" and any(c.change == "added" for c in rejected):
        ways.append(f"add the new column to the target (e.g. ALTER TABLE {pipeline.target} ADD COLUMN …) or set "
                    f"schema_changes: evolve (the load then adds it and back-fills existing rows)")
    if decision.policy != "evolve" and any(c.change == "dropped" for c in rejected):
        ways.append(f"drop the column from the target or its NOT NULL (ALTER TABLE {pipeline.target} ALTER COLUMN … "
                    f"DROP NOT NULL), or set schema_changes: evolve")
    return (f"source {pipeline.source} and target {pipeline.target} no longer match and schema_changes is "
            f"{decision.policy!r}: {lines}. Nothing was loaded. Way out: {'; or '.join(ways)}; then trigger "
            f"{pipeline.dag_id} with full_snapshot=true to reload existing rows.")


def _copy_into_empty(conn: psycopg.Connection, pipeline: Pipeline, columns: list[Column], paths: list[Any],
                     run_id: str) -> int | None:
    """The snapshot fast path: when the target has no row, COPY the files straight into it.

    Runs inside the caller's transaction, after ``LOCK TABLE … SHARE ROW EXCLUSIVE`` (no other writer
    until commit). Snapshot batches are disjoint key ranges, so a key cannot arrive twice; if one
    did, the savepoint is rolled back and the caller merges instead.

    Returns:
        Rows copied, or ``None`` when the target is not empty (or a key repeated).
    """
    target = table_ident(pipeline.target)
    conn.execute(LOCK_TARGET.format(table=target))
    (empty,) = conn.execute(TARGET_IS_EMPTY.format(table=target)).fetchone()  # type: ignore[misc]
    if not empty:
        return None
    try:
        with conn.transaction(), conn.cursor() as cur:
            return copy_files(cur, target, columns, paths, run_id)
    except psycopg.errors.UniqueViolation:
        log.warning("%s: a key repeated across batch files; merging instead of copying", pipeline.target)
        return None


def load_files(
    conn: psycopg.Connection,
    pipeline: Pipeline,
    source_columns: list[Column],
    paths: Iterable[Any],
    run_id: str,
    snapshot: bool = False,
    source: psycopg.Connection | None = None,
    on_schema_change: SchemaChangeHandler | None = None,
) -> LoadResult:
    """Bulk-loads Parquet files into a staging table and merges them into the target, atomically.

    For a snapshot (``snapshot=True``) into a target that has no row, the files are copied straight
    into the target instead (no staging table, no merge: nothing to merge with). Schema changes are
    applied first, in the same transaction (module docstring).

    Args:
        conn: Warehouse connection.
        pipeline: The table's configuration.
        source_columns: Columns the files were written with (the source's, in order).
        paths: Batch files (``ObjectStoragePath`` or ``pathlib.Path``).
        run_id: Airflow run id, stored in ``_run_id``.
        snapshot: The files hold a full snapshot (disjoint key ranges).
        source: Source connection, read to back-fill columns the load adds (required when it adds one).
        on_schema_change: Called once the load committed (or was refused) with
            ``{"table", "source", "policy", "changes": [...]}`` when it recorded a schema change.

    Returns:
        Rows staged, merged and back-filled, seconds taken, the schema changes recorded.

    Raises:
        SchemaChanged: The policy rejects a difference between source and target columns (checked
            first; nothing is written but its ``schema_history`` rows), or a file was extracted with
            other columns than the source has now.
    """
    started = time.monotonic()
    paths = list(paths)
    if snapshot:
        with conn.transaction():
            built = finish_build(conn, pipeline, source_columns, run_id)
        if built:
            rows = file_rows(paths)
            _analyze(conn, pipeline)
            result = LoadResult(staged=rows, merged=rows, seconds=time.monotonic() - started)
            log.info("%s: %d rows: the snapshot's build table became the target in %.2f s", pipeline.target, rows,
                     result.seconds)
            return result
    decision = ensure_target(conn, pipeline, source_columns)
    if decision.rejected:
        reject(conn, pipeline, run_id, decision, on_schema_change)
    columns = list(decision.columns)
    staging = sql.Identifier(f"_stg_{pipeline.name}")
    target = table_ident(pipeline.target)
    backfilled = 0
    with conn.transaction():
        if decision.alters_target:
            backfilled = alter_target(conn, pipeline, decision, source)
        copied = _copy_into_empty(conn, pipeline, columns, paths, run_id) if snapshot else None
        if copied is None:
            staged, merged = _stage_and_merge(conn, pipeline, columns, paths, run_id, staging, target)
        else:
            staged = merged = copied
        recorded = tuple(schema_history.record(conn, pipeline.name, run_id, str(pipeline.target), decision.policy,
                                               decision.changes)) if decision.changes else ()
        if merged:
            _ensure_cursor_index(conn, pipeline, target)
    if merged:
        _analyze(conn, pipeline, None if copied is not None else merged)
    result = LoadResult(staged=staged, merged=merged, seconds=time.monotonic() - started, backfilled=backfilled,
                        schema_changes=recorded)
    log.info("%s: staged %d rows, merged %d (%d unchanged by the version guard) in %.2f s%s",
             pipeline.target, result.staged, result.merged, result.unchanged, result.seconds,
             " (copied into the empty target)" if copied is not None else "")
    if recorded:
        report(pipeline, decision.policy, recorded, on_schema_change)
    return result


# ANALYZE after a load only when its statistics would be off: none yet (a new target), or the load
# changed at least this share of the rows they describe, autovacuum's own default
# (autovacuum_analyze_scale_factor), which otherwise analyzes in the background. An incremental
# window changes far less: its ANALYZE cost a two-hourly run 0.4 s (orders) to 1.1 s (lineitem) at SF 1.
ANALYZE_SHARE = 0.1


def _analyze(conn: psycopg.Connection, pipeline: Pipeline, changed: int | None = None) -> None:
    """ANALYZE after a load that changed rows (``changed``; ``None``: all of them), so plans of later
    merges and reconciles stay sane, unless the change is too small to move the statistics
    (:data:`ANALYZE_SHARE`). The load itself has committed, so a failure here is only logged."""
    target = table_ident(pipeline.target)
    try:
        if changed is not None:
            described = row_estimate(conn, pipeline.target)
            conn.commit()
            if described is not None and described >= 0 and changed < ANALYZE_SHARE * described:
                log.info("%s: %d rows changed of about %d: statistics left to autovacuum", pipeline.target,
                         changed, int(described))
                return
        conn.execute(sql.SQL("ANALYZE {}").format(target))
        conn.commit()
    except psycopg.Error as exc:
        conn.rollback()
        log.warning("%s: ANALYZE after the load failed (%s); the loaded rows are committed", pipeline.target, exc)


def _ensure_cursor_index(conn: psycopg.Connection, pipeline: Pipeline, target: sql.Identifier) -> None:
    """Builds the target's cursor index inside the load's transaction, once: ``to_regclass`` looks it up
    without a table lock, so a load never queues behind other writers for an index that exists."""
    name = cursor_index(pipeline.target, pipeline.cursor)
    if not relation_exists(conn, pipeline.target.schema, name):
        conn.execute(CURSOR_INDEX.format(index=sql.Identifier(name), table=target,
                                         cursor=sql.Identifier(pipeline.cursor)))


def report(pipeline: Pipeline, policy: str, changes: Iterable[ColumnChange],
           on_schema_change: SchemaChangeHandler | None) -> None:
    """Logs the recorded schema changes and passes them to ``on_schema_change`` (the DAG's alert):
    ``{"table", "source", "policy", "changes": [ColumnChange.to_dict(), ...]}``."""
    changes = list(changes)
    for change in changes:
        log.warning("%s: schema change (%s): %s: %s, %s", pipeline.target, policy, change.describe(), change.outcome,
                    change.detail)
    if on_schema_change is not None:
        on_schema_change({"table": str(pipeline.target), "source": str(pipeline.source), "policy": policy,
                          "changes": [c.to_dict() for c in changes]})


def reject(conn: psycopg.Connection, pipeline: Pipeline, run_id: str, decision: SchemaDecision,
           on_schema_change: SchemaChangeHandler | None) -> None:
    """Records the refused changes (every difference seen, committed on its own), reports them, raises."""
    with conn.transaction():
        recorded = schema_history.record(conn, pipeline.name, run_id, str(pipeline.target), decision.policy,
                                         decision.changes)
    conn.commit()
    report(pipeline, decision.policy, recorded, on_schema_change)
    raise SchemaChanged(rejection_message(pipeline, decision))


def alter_target(conn: psycopg.Connection, pipeline: Pipeline, decision: SchemaDecision,
                 source: psycopg.Connection | None) -> int:
    """Runs the decided DDL in the caller's transaction and back-fills added columns (rows updated).

    Added columns are nullable whatever the source says: the warehouse keeps rows deleted at the
    source (tombstones), which have no value for them.
    """
    target = table_ident(pipeline.target)
    actions = [sql.SQL("ADD COLUMN {} {}").format(sql.Identifier(c.name), sql.SQL(c.sql_type)) for c in decision.add]
    actions += [sql.SQL("ALTER COLUMN {} TYPE {}").format(sql.Identifier(c.name), sql.SQL(c.sql_type))
                for c in decision.widen]
    actions += [sql.SQL("ALTER COLUMN {} DROP NOT NULL").format(sql.Identifier(n)) for n in decision.relax]
    conn.execute(ALTER_TARGET.format(table=target, actions=sql.SQL(", ").join(actions)))
    log.info("%s: altered for schema changes: %s", pipeline.target, "; ".join(c.describe() for c in decision.changes))
    if not decision.add:
        return 0
    (empty,) = conn.execute(TARGET_IS_EMPTY.format(table=target)).fetchone()  # type: ignore[misc]
    if empty:
        return 0
    if source is None:
        raise ValueError("a source connection is needed to back-fill the columns the load adds")
    return _backfill(conn, source, pipeline, list(decision.add))


def _backfill(conn: psycopg.Connection, source: psycopg.Connection, pipeline: Pipeline, added: list[Column]) -> int:
    """Gives the target's rows the source's values of the ``added`` columns, by key, where the target
    holds the source's current version (same cursor); a newer source version arrives with a merge.

    Key, cursor and the added columns stream from one source ``COPY`` into a temporary table (memory
    stays bounded by COPY's chunks, whatever the table's size), then one ``UPDATE … FROM`` joins it.
    """
    backfill = sql.Identifier(f"_backfill_{pipeline.name}")
    names = [*pipeline.primary_key, pipeline.cursor, *(c.name for c in added)]
    conn.execute(CREATE_BACKFILL.format(backfill=backfill, columns=idents(names), table=table_ident(pipeline.target)))
    fetch = FETCH_BACKFILL.format(columns=idents(names), table=table_ident(pipeline.source))
    with source.cursor() as out, out.copy(fetch) as reader, conn.cursor() as cur:
        with cur.copy(COPY_CSV.format(table=backfill, columns=idents(names))) as writer:
            for chunk in reader:
                writer.write(chunk)
    source.commit()
    conn.execute(sql.SQL("ANALYZE {}").format(backfill))
    updated = conn.execute(load_sql(
        "sync/backfill_columns.sql", table=table_ident(pipeline.target), backfill=backfill,
        assignments=sql.SQL(", ").join(sql.SQL("{c} = b.{c}").format(c=sql.Identifier(c.name)) for c in added),
        join=sql.SQL(" AND ").join(sql.SQL("t.{k} = b.{k}").format(k=sql.Identifier(k)) for k in pipeline.primary_key),
        cursor=sql.Identifier(pipeline.cursor),
    )).rowcount
    log.info("%s: back-filled %s for %d existing rows", pipeline.target, ", ".join(c.name for c in added), updated)
    return max(updated, 0)


def _stage_and_merge(conn: psycopg.Connection, pipeline: Pipeline, columns: list[Column], paths: list[Any],
                     run_id: str, staging: sql.Identifier, target: sql.Identifier) -> tuple[int, int]:
    """COPY into a temporary staging table, then the version-guarded merge (rows staged, rows merged)."""
    names = [c.name for c in columns]
    conn.execute(CREATE_STAGING.format(staging=staging, table=target))
    with conn.cursor() as cur:
        staged = copy_files(cur, staging, columns, paths)
        non_key = [n for n in names if n not in pipeline.primary_key]
        assignments = sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(n)) for n in non_key)
        cur.execute(load_sql(
            "sync/merge_staging.sql", table=target, staging=staging, columns=idents(names),
            primary_key=idents(pipeline.primary_key), cursor=sql.Identifier(pipeline.cursor), assignments=assignments,
        ), {"run_id": run_id})
        merged = max(cur.rowcount, 0)
    return staged, merged
