"""Cursor mode's load: bulk-copy a window's Parquet files into a staging table and merge them into the target.

A snapshot into a new target was already copied into its build table by the extracts: the load
indexes it and renames it to the target (:mod:`warehouse_sync.target.build`). A snapshot into an existing empty
target copies its files straight into it; no staging table, no merge. The copy itself is
:mod:`warehouse_sync.target.bulk_copy`'s (binary COPY encoded from Arrow by ``pgpq``, CSV for types
without an exact binary form).

All in one warehouse transaction: the schema policy's DDL (:mod:`warehouse_sync.target.ddl`),
``CREATE TEMP TABLE … ON COMMIT DROP``, ``COPY … FROM STDIN`` (never row-by-row ``INSERT``), then
one version-guarded ``INSERT … ON CONFLICT DO UPDATE … WHERE target.cursor < excluded.cursor``
(``warehouse_sync/sql/sync/merge_staging.sql``), then the ``schema_history`` rows. A failure
anywhere rolls everything back, and a replay of the same files changes nothing.

Phases timed (:class:`LoadResult` ``phases``, seconds): ``build_finish``, ``ensure_target``,
``alter_target``, ``copy`` (into the staging table or the empty target), ``merge``, ``cursor_index``,
``commit``, ``analyze``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from warehouse_sync.bookkeeping import schema_history
from warehouse_sync.config import Pipeline
from warehouse_sync.db.catalog import Column
from warehouse_sync.db.statements import CREATE_STAGING, idents, load_sql, table_ident
from warehouse_sync.run import Run
from warehouse_sync.target.build import finish as finish_build
from warehouse_sync.target.bulk_copy import copy_files, file_rows
from warehouse_sync.target.ddl import (
    SchemaChangeHandler,
    alter_target,
    analyze,
    ensure_cursor_index,
    ensure_target,
    reject,
    report,
)
from warehouse_sync.target.schema import ColumnChange
from warehouse_sync.timing import Phases

__all__ = ["LoadResult", "load_files"]

log = logging.getLogger(__name__)

LOCK_TARGET = sql.SQL("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
TARGET_IS_EMPTY = sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {table})")


@dataclass(frozen=True)
class LoadResult:
    """What a load did: rows staged and merged, seconds, rows back-filled, schema changes and phases.

    Rows staged (read from files), rows merged (inserted or replaced by a newer version), seconds; rows
    back-filled (existing rows given the values of added columns), the schema changes recorded and ``phases``
    (``{phase: seconds}``, module docstring).
    """

    staged: int
    merged: int
    seconds: float
    backfilled: int = 0
    schema_changes: tuple[ColumnChange, ...] = ()
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def unchanged(self) -> int:
        """Rows skipped by the version guard (already present at the same or a newer version)."""
        return self.staged - self.merged


def _copy_into_empty(conn: psycopg.Connection, pipeline: Pipeline, columns: list[Column], paths: list[Any],
                     run_id: str, phases: Phases) -> int | None:
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
        with phases.timed("copy"), conn.transaction(), conn.cursor() as cur:
            return copy_files(cur, target, columns, paths, run_id, pipeline.page_bytes)
    except psycopg.errors.UniqueViolation:
        log.warning("%s: a key repeated across batch files; merging instead of copying", pipeline.target)
        return None


def load_files(
    run: Run,
    source_columns: list[Column],
    paths: Iterable[Any],
    snapshot: bool = False,
    on_schema_change: SchemaChangeHandler | None = None,
) -> LoadResult:
    """Bulk-loads Parquet files into a staging table and merges them into the target, atomically.

    For a snapshot (``snapshot=True``) into a target that has no row, the files are copied straight
    into the target instead (no staging table, no merge: nothing to merge with). Schema changes are
    applied first, in the same transaction (module docstring).

    Args:
        run: The run: the warehouse is loaded, the source read to back-fill columns the load adds, the
            run id stored in ``_run_id``.
        source_columns: Columns the files were written with (the source's, in order).
        paths: Batch files (``ObjectStoragePath`` or ``pathlib.Path``).
        snapshot: The files hold a full snapshot (disjoint key ranges).
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
    phases = Phases()
    conn, pipeline, run_id, source = run.warehouse, run.pipeline, run.run_id, run.source
    paths = list(paths)
    if snapshot:
        with phases.timed("build_finish"), conn.transaction():
            built = finish_build(run, source_columns)
        if built:
            rows = file_rows(paths)
            with phases.timed("analyze"):
                analyze(conn, pipeline)
            result = LoadResult(staged=rows, merged=rows, seconds=time.monotonic() - started,
                                phases=phases.to_dict())
            log.info("%s: %d rows: the snapshot's build table became the target in %.2f s", pipeline.target, rows,
                     result.seconds)
            return result
    with phases.timed("ensure_target"):
        decision = ensure_target(conn, pipeline, source_columns)
    if decision.rejected:
        reject(run, decision, on_schema_change)
    staged_as = {c.name: c for c in source_columns}  # the files' columns (the decision's carry warehouse types)
    columns = [staged_as[c.name] for c in decision.columns]
    staging = sql.Identifier(f"_stg_{pipeline.name}")
    target = table_ident(pipeline.target)
    backfilled = 0
    with conn.transaction():
        if decision.alters_target:
            with phases.timed("alter_target"):
                backfilled = alter_target(conn, pipeline, decision, source)
        copied = _copy_into_empty(conn, pipeline, columns, paths, run_id, phases) if snapshot else None
        if copied is None:
            staged, merged = _stage_and_merge(conn, pipeline, columns, paths, run_id, staging, target, phases)
        else:
            staged = merged = copied
        recorded = tuple(schema_history.record(conn, pipeline.name, run_id, str(pipeline.target), decision.policy,
                                               decision.changes)) if decision.changes else ()
        if merged:
            with phases.timed("cursor_index"):
                ensure_cursor_index(conn, pipeline)
        commit_started = time.perf_counter()
    phases.add("commit", time.perf_counter() - commit_started)
    if merged:
        with phases.timed("analyze"):
            analyze(conn, pipeline, None if copied is not None else merged)
    result = LoadResult(staged=staged, merged=merged, seconds=time.monotonic() - started, backfilled=backfilled,
                        schema_changes=recorded, phases=phases.to_dict())
    log.info("%s: staged %d rows, merged %d (%d unchanged by the version guard) in %.2f s%s",
             pipeline.target, result.staged, result.merged, result.unchanged, result.seconds,
             " (copied into the empty target)" if copied is not None else "")
    if recorded:
        report(pipeline, decision.policy, recorded, on_schema_change)
    return result


def _stage_and_merge(conn: psycopg.Connection, pipeline: Pipeline, columns: list[Column], paths: list[Any],
                     run_id: str, staging: sql.Identifier, target: sql.Identifier, phases: Phases) -> tuple[int, int]:
    """COPY into a temporary staging table, then the version-guarded merge (rows staged, rows merged)."""
    names = [c.name for c in columns]
    conn.execute(CREATE_STAGING.format(staging=staging, table=target))
    with conn.cursor() as cur:
        with phases.timed("copy"):
            staged = copy_files(cur, staging, columns, paths, max_bytes=pipeline.page_bytes)
        non_key = [n for n in names if n not in pipeline.primary_key]
        assignments = sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(n)) for n in non_key)
        with phases.timed("merge"):
            cur.execute(load_sql(
                "sync/merge_staging.sql", table=target, staging=staging, columns=idents(names),
                primary_key=idents(pipeline.primary_key), cursor=sql.Identifier(pipeline.cursor),
                assignments=assignments,
            ), {"run_id": run_id})
        merged = max(cur.rowcount, 0)
    return staged, merged
