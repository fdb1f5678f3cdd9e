"""Load: bulk-copy a window's Parquet files into a staging table and merge them into the target.

(A full snapshot into an empty target skips both: its files are copied straight into the target.)

All in one warehouse transaction: ``CREATE TEMP TABLE … ON COMMIT DROP``, ``COPY … FROM STDIN``
(never row-by-row ``INSERT``), then one version-guarded ``INSERT … ON CONFLICT DO UPDATE … WHERE
target.cursor < excluded.cursor`` (``include/sql/merge_staging.sql``). A failure anywhere rolls
everything back, and a replay of the same files changes nothing.

The target keeps the source's column names and types and adds ``_synced_at``, ``_run_id`` and
``_deleted_at``. A difference between source and target columns is a :class:`SchemaDrift` error
that names every differing column, so a source schema change never breaks the sink silently.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable

import psycopg
from psycopg import sql

from warehouse_sync.bulk import copy_files
from warehouse_sync.catalog import Column, TableNotFound, read_columns
from warehouse_sync.config import Pipeline
from warehouse_sync.queries import idents, load_sql, table_ident

log = logging.getLogger(__name__)

METADATA_PREFIX = "_"


class SchemaDrift(RuntimeError):
    """Source and target columns differ; the message lists each difference and the fix."""


@dataclass(frozen=True)
class LoadResult:
    """Rows staged (read from files), rows merged (inserted or replaced by a newer version), seconds."""

    staged: int
    merged: int
    seconds: float

    @property
    def unchanged(self) -> int:
        """Rows skipped by the version guard (already present at the same or a newer version)."""
        return self.staged - self.merged


def ensure_target(conn: psycopg.Connection, pipeline: Pipeline, source_columns: list[Column]) -> None:
    """Creates the target table if missing, else checks that its columns still match the source.

    Raises:
        SchemaDrift: A column was added to, dropped from, or changed type in the source.
    """
    try:
        target_columns = [c for c in read_columns(conn, pipeline.target) if not c.name.startswith(METADATA_PREFIX)]
    except TableNotFound:
        definitions = column_definitions(source_columns)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('warehouse_sync.ddl'))")
            conn.execute(load_sql(
                "create_target.sql", schema=sql.Identifier(pipeline.target.schema), table=table_ident(pipeline.target),
                column_defs=definitions, primary_key=idents(pipeline.primary_key),
            ))
        conn.commit()
        log.info("created target table %s", pipeline.target)
        return
    conn.commit()
    problems = describe_drift(source_columns, target_columns)
    if problems:
        raise SchemaDrift(
            f"source {pipeline.source} and target {pipeline.target} no longer match: {'; '.join(problems)}. "
            f"Change the target to match (e.g. ALTER TABLE {pipeline.target} ADD COLUMN …), then trigger "
            f"{pipeline.dag_id} with full_snapshot=true to reload existing rows."
        )


def column_definitions(columns: list[Column]) -> sql.Composable:
    """``name type [NOT NULL]`` for each column, comma-separated (for ``CREATE TABLE``)."""
    return sql.SQL(",\n    ").join(
        sql.SQL("{} {}{}").format(sql.Identifier(c.name), sql.SQL(c.sql_type), sql.SQL(" NOT NULL" if c.not_null else ""))
        for c in columns
    )


def describe_drift(source: list[Column], target: list[Column]) -> list[str]:
    """Human-readable differences between source and target columns (empty when they match)."""
    src = {c.name: c.sql_type for c in source}
    tgt = {c.name: c.sql_type for c in target}
    problems = [f"column {n!r} ({t}) is new in the source" for n, t in src.items() if n not in tgt]
    problems += [f"column {n!r} is gone from the source" for n in tgt if n not in src]
    problems += [
        f"column {n!r} changed type from {tgt[n]} to {t}" for n, t in src.items() if n in tgt and tgt[n] != t
    ]
    return problems


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
    conn.execute(load_sql("lock_target_empty.sql", table=target))
    (empty,) = conn.execute(load_sql("target_is_empty.sql", table=target)).fetchone()  # type: ignore[misc]
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
) -> LoadResult:
    """Bulk-loads Parquet files into a staging table and merges them into the target, atomically.

    For a snapshot (``snapshot=True``) into a target that has no row, the files are copied straight
    into the target instead (no staging table, no merge: nothing to merge with).

    Args:
        conn: Warehouse connection.
        pipeline: The table's configuration.
        source_columns: Columns the files were written with (the source's, in order).
        paths: Batch files (``ObjectStoragePath`` or ``pathlib.Path``).
        run_id: Airflow run id, stored in ``_run_id``.
        snapshot: The files hold a full snapshot (disjoint key ranges).

    Returns:
        Rows staged and merged, seconds taken.

    Raises:
        SchemaDrift: Target columns differ from the source (checked first; nothing is written).
    """
    started = time.monotonic()
    ensure_target(conn, pipeline, source_columns)
    staging = sql.Identifier(f"_stg_{pipeline.name}")
    target = table_ident(pipeline.target)
    paths = list(paths)
    with conn.transaction():
        copied = _copy_into_empty(conn, pipeline, source_columns, paths, run_id) if snapshot else None
        if copied is None:
            staged, merged = _stage_and_merge(conn, pipeline, source_columns, paths, run_id, staging, target)
        else:
            staged = merged = copied
    if merged:
        conn.execute(sql.SQL("ANALYZE {}").format(target))  # keep plans of later merges and reconciles sane
        conn.commit()
    result = LoadResult(staged=staged, merged=merged, seconds=time.monotonic() - started)
    log.info("%s: staged %d rows, merged %d (%d unchanged by the version guard) in %.2f s%s",
             pipeline.target, result.staged, result.merged, result.unchanged, result.seconds,
             " (copied into the empty target)" if copied is not None else "")
    return result


def _stage_and_merge(conn: psycopg.Connection, pipeline: Pipeline, columns: list[Column], paths: list[Any],
                     run_id: str, staging: sql.Identifier, target: sql.Identifier) -> tuple[int, int]:
    """COPY into a temporary staging table, then the version-guarded merge (rows staged, rows merged)."""
    names = [c.name for c in columns]
    conn.execute(load_sql("create_staging.sql", staging=staging, table=target))
    with conn.cursor() as cur:
        staged = copy_files(cur, staging, columns, paths)
        non_key = [n for n in names if n not in pipeline.primary_key]
        assignments = sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(n)) for n in non_key)
        cur.execute(load_sql(
            "merge_staging.sql", table=target, staging=staging, columns=idents(names),
            primary_key=idents(pipeline.primary_key), cursor=sql.Identifier(pipeline.cursor), assignments=assignments,
        ), {"run_id": run_id})
        merged = max(cur.rowcount, 0)
    return staged, merged
