"""CDC load: COPY a run's staged changes into a temporary table and merge them with the LSN as version.

A snapshot into a new target was copied into the run's build table by its extracts already: the load
indexes it and renames it to the target (:mod:`warehouse_sync.target.build`, as in cursor mode), and
merges the files as below only when the build table cannot become the target.

In one warehouse transaction: the schema policy's decision (:mod:`warehouse_sync.target.schema`, run
by :mod:`warehouse_sync.target.ddl` as in a cursor load), then ``CREATE TEMP TABLE … ON COMMIT DROP`` with every
column as ``text``, the staged files by ``COPY … FROM STDIN`` (binary, encoded by pgpq, for consecutive
batches whose changes carried every column; CSV otherwise: orders SF 1, 100 000 updates, 0.51-0.56 s
as CSV, 0.21-0.29 s binary), and one ``MERGE`` (``warehouse_sync/sql/cdc/merge_changes.sql``):

* **version guard**: the target keeps ``_lsn``, the commit LSN of the change it holds (snapshot rows:
  one below the slot's consistent point). A change replaces a row only when its LSN is greater, so a
  replayed run (killed before the slot was confirmed) changes nothing;
* **several changes of one key in a run** collapse to the last (by stream order), each column taking
  the newest value any of them carried (when every change carried every column, the common case, the
  newest change of each key as it is: ``cdc/latest_rows.sql``, without per-column aggregates);
* **unchanged TOAST values** (``u`` in pgoutput) and columns a change did not have (a relation from
  before an ``ADD COLUMN``) keep the target's value; they are never set to NULL. An update that changed
  the key (staged as ``D`` of the old key, then ``K`` of the new one) takes them from the old key's row
  (:func:`_fill_key_changes`);
* **deletes**: ``delete_mode: soft`` sets ``_deleted_at`` (the source commit time) and keeps the row;
  ``hard`` deletes it. A hard delete leaves no version behind, which is safe: a run re-reads a
  contiguous range of the log from the slot's confirmed position, so a replayed insert always comes
  with the delete that followed it and collapses into it.

Values arrive in the source's text form and are cast with the target column's type (the warehouse type
of :mod:`warehouse_sync.target.types`: an enum's label into ``text``, a domain's value into its base type).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from warehouse_sync.bookkeeping import schema_history
from warehouse_sync.cdc.changes import META_NAMES
from warehouse_sync.config import Pipeline
from warehouse_sync.db.catalog import Column
from warehouse_sync.db.statements import idents, load_sql, table_ident
from warehouse_sync.run import Run
from warehouse_sync.target.build import finish as finish_build
from warehouse_sync.target.bulk_copy import copy_binary, copy_csv, file_rows
from warehouse_sync.target.ddl import SchemaChangeHandler, alter_target, analyze, ensure_target, reject, report
from warehouse_sync.target.schema import ColumnChange
from warehouse_sync.timing import Phases

log = logging.getLogger(__name__)

VERSION_COLUMN = "_lsn"
ADD_VERSION = sql.SQL("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS _lsn bigint")
CREATE_STAGING = sql.SQL("CREATE TEMP TABLE {staging} (_op text, _lsn bigint, _seq bigint, _commit_time timestamptz, "
                         "_unchanged text[], {columns}) ON COMMIT DROP")
READ_ROWS = 50_000
# Whether a staged change lacks a column (unchanged TOAST value, or a column its relation did not have).
PARTIAL_CHANGES = sql.SQL("SELECT EXISTS (SELECT FROM {staging} WHERE cardinality(_unchanged) > 0)")
STAGING_KEY_INDEX = sql.SQL("CREATE INDEX ON {staging} ({keys}, _seq)")
ASSIGN, ASSIGN_SENT = "{c} = {v}", "{c} = CASE WHEN {lit} = ANY(s._missing) THEN t.{c} ELSE {v} END"
SNAPSHOT_ROWS = sql.SQL("SELECT _op, _lsn, _commit_time, {columns}, ARRAY[]::text[] AS _missing FROM {staging}")


@dataclass(frozen=True)
class ApplyResult:
    """What applying the staged changes did: rows staged, keys merged, seconds, schema changes and phases.

    Rows staged (changes read from files), keys merged (inserted, updated or deleted), seconds, the schema
    changes recorded, and ``phases`` (``ensure_target``, ``alter_target``, ``copy``, ``merge``, ``commit``:
    seconds).
    """

    staged: int
    merged: int
    seconds: float
    schema_changes: tuple[ColumnChange, ...] = ()
    phases: dict[str, float] = field(default_factory=dict)


def _conform(batch: pa.RecordBatch, names: list[str]) -> pa.RecordBatch:
    """The batch with exactly the metadata columns and ``names``.

    A column the file lacks is NULL and listed in ``_unchanged`` (the change did not carry it).
    """
    absent = [n for n in names if n not in batch.schema.names]
    unchanged = batch.column("_unchanged")
    if absent:
        extra = ",".join('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in absent)
        inner = pc.utf8_slice_codeunits(unchanged, 1, -1)
        joined = pc.if_else(pc.is_null(unchanged), pa.scalar(extra), pc.binary_join_element_wise(inner, extra, ","))
        unchanged = pc.binary_join_element_wise("{", joined, "}", "")
    arrays = [batch.column(n) for n in META_NAMES[:4]] + [unchanged]
    arrays += [batch.column(n) if n in batch.schema.names else pa.nulls(batch.num_rows, pa.string()) for n in names]
    return pa.RecordBatch.from_arrays(arrays, names=[*META_NAMES, *names])


def _batch_rows(parquet: pq.ParquetFile, max_bytes: int) -> int:
    """Rows per batch read from a change file: :data:`READ_ROWS`, fewer for wide rows (about ``max_bytes``)."""
    meta = parquet.metadata
    if meta.num_rows == 0:
        return READ_ROWS
    per_row = max(1, -(-sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)) // meta.num_rows))
    return max(1, min(READ_ROWS, max_bytes // per_row))


def _copy(cur: psycopg.Cursor, staging: sql.Identifier, names: list[str], paths: Iterable[Any],
          max_bytes: int) -> int:
    """COPYs the staged files into the staging table and returns the rows.

    Consecutive batches in which every change carried every column (``_unchanged`` all NULL, the
    common case) go in one binary COPY without that column (:func:`~warehouse_sync.target.bulk_copy.copy_binary`:
    no CSV written here nor parsed by the server); the others in one CSV COPY, ``_unchanged`` being
    a ``text[]`` literal.
    """
    rows = 0
    for whole, group in itertools.groupby(_batches(paths, names, max_bytes),
                                          key=lambda b: b.column("_unchanged").null_count == b.num_rows):
        if whole:
            batches = (b.drop_columns(["_unchanged"]) for b in group)
            first = next(batches)
            rows += copy_binary(cur, staging, idents(first.schema.names), first.schema,
                                itertools.chain([first], batches))
            continue
        rows += copy_csv(cur, staging, idents([*META_NAMES, *names]), group)
    return rows


def _batches(paths: Iterable[Any], names: list[str], max_bytes: int) -> Iterator[pa.RecordBatch]:
    """The staged files' rows in stream order, in batches of about ``max_bytes`` (:func:`_conform`ed)."""
    for path in paths:
        with path.open("rb") as handle:
            parquet = pq.ParquetFile(handle)
            wanted = [n for n in [*META_NAMES, *names] if n in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(batch_size=_batch_rows(parquet, max_bytes), columns=wanted):
                yield _conform(batch, names)


def _fill_key_changes(cur: psycopg.Cursor, pipeline: Pipeline, columns: list[Column], staging: sql.Identifier) -> int:
    """Gives an update that changed the key the TOASTed values it left unchanged, from its old key's row.

    pgoutput sends an unchanged out-of-line value as "unchanged" even when the key changed; the change is
    staged as a delete of the old key and a ``K`` row of the new key, which has no target row to keep the
    value from. The value is the old key's just before the delete (``sql/cdc/fill_key_change.sql``): exact,
    because the staged changes since the last confirmed run and the target's rows as that run left them
    hold the old row's whole history. Rarely needed, so the index it uses is built only then.

    Returns:
        Staged rows filled (one per column filled).
    """
    keys = [c for c in columns if c.name in pipeline.primary_key]
    cur.execute(load_sql("cdc/key_change_gaps.sql", staging=staging))
    gaps = {name for (name,) in cur.fetchall()} - set(pipeline.primary_key)
    wanted = [c for c in columns if c.name in gaps]
    if not wanted:
        return 0
    cur.execute(STAGING_KEY_INDEX.format(staging=staging, keys=idents([k.name for k in keys])))
    cur.execute(sql.SQL("ANALYZE {}").format(staging))
    same_key = sql.SQL(" AND ").join(sql.SQL("e.{k} = d.{k}").format(k=sql.Identifier(k.name)) for k in keys)
    target_key = sql.SQL(" AND ").join(sql.SQL("t.{} = CAST({} AS {})").format(
        sql.Identifier(k.name), sql.Identifier("d", k.name), sql.SQL(k.sql_type)) for k in keys)
    filled = 0
    for column in wanted:
        statement = load_sql("cdc/fill_key_change.sql", staging=staging, column=sql.Identifier(column.name),
                             label=sql.Literal(column.name), same_key=same_key, target_key=target_key,
                             table=table_ident(pipeline.target))
        while True:  # one pass per link of a chain of key changes within the run
            cur.execute(statement)
            if cur.rowcount <= 0:
                break
            filled += cur.rowcount
    log.info("%s: %d unchanged value(s) of key-changing updates taken from the old key's row", pipeline.target, filled)
    return filled


def _merge_statement(pipeline: Pipeline, columns: list[Column], staging: sql.Identifier,
                     snapshot: bool = False, whole: bool = False) -> sql.Composed | sql.SQL:
    keys = [c for c in columns if c.name in pipeline.primary_key]
    others = [c for c in columns if c.name not in pipeline.primary_key]
    sent = "_unchanged IS NULL OR NOT {lit} = ANY(_unchanged)"

    def cast(c: Column, prefix: str = "s") -> sql.Composable:
        return sql.SQL("CAST({} AS {})").format(sql.Identifier(prefix, c.name), sql.SQL(c.sql_type))

    aggregates = sql.SQL(",\n           ").join(
        sql.SQL("(array_agg({c} ORDER BY _seq DESC) FILTER (WHERE " + sent + "))[1] AS {c}").format(
            c=sql.Identifier(c.name), lit=sql.Literal(c.name)) for c in others)
    missing = sql.SQL(", ").join(
        sql.SQL("CASE WHEN bool_or(" + sent + ") THEN NULL ELSE {lit} END").format(lit=sql.Literal(c.name))
        for c in others)
    delete_action = (sql.SQL("DELETE") if pipeline.delete_mode == "hard" else sql.SQL(
        "UPDATE SET _deleted_at = coalesce(s._commit_time, now()), _lsn = s._lsn, _synced_at = now(), "
        "_run_id = %(run_id)s"))
    changes: sql.Composable
    if snapshot:  # one row per key already: no aggregation
        changes = SNAPSHOT_ROWS.format(columns=idents([c.name for c in columns]), staging=staging)
    elif whole:  # every change carried every column: the newest per key as it is, no per-column aggregates
        # Staged keys are text: sorting them byte-wise (COLLATE "C") groups them the same, without the
        # collation's rules.
        changes = load_sql("cdc/latest_rows.sql", keys=sql.SQL(", ").join(
            sql.SQL('{} COLLATE "C"').format(sql.Identifier(k.name)) for k in keys),
            columns=idents([c.name for c in columns]), staging=staging)
    else:
        changes = load_sql("cdc/latest_changes.sql", keys=idents([k.name for k in keys]), aggregates=aggregates,
                           missing=missing or sql.SQL("NULL"), staging=staging)
    return load_sql(
        "cdc/merge_changes.sql", table=table_ident(pipeline.target), changes=changes,
        join=sql.SQL(" AND ").join(sql.SQL("t.{} = {}").format(sql.Identifier(k.name), cast(k)) for k in keys),
        delete_action=delete_action,
        assignments=sql.SQL(", ").join(  # no column is missing when every change carried every column
            sql.SQL(ASSIGN if snapshot or whole else ASSIGN_SENT).format(
                c=sql.Identifier(c.name), lit=sql.Literal(c.name), v=cast(c)) for c in others),
        columns=idents([c.name for c in columns]),
        values=sql.SQL(", ").join(cast(c) for c in columns),
    )


def apply_changes(run: Run, source_columns: list[Column], paths: Iterable[Any],
                  on_schema_change: SchemaChangeHandler | None = None, snapshot: bool = False) -> ApplyResult:
    """Merges staged changes (:mod:`.changes` files) into the target in one transaction.

    Args:
        run: The pipeline, its two connections and the run id: the warehouse connection receives the merge, the
            source connection back-fills columns the policy adds.
        source_columns: The source table's columns now (the schema policy compares them with the target's).
        paths: Staged files, in stream order.
        on_schema_change: Called with the schema changes recorded (applied, kept, ignored or rejected):
            ``{"table", "source", "policy", "changes": [...]}``.
        snapshot: The files hold a snapshot (one row per key): the run's build table becomes the target,
            or the files are merged without collapsing changes.

    Returns:
        Rows staged, keys merged, seconds, schema changes recorded.

    Raises:
        SchemaChanged: The policy rejects a difference between source and target (nothing written).
    """
    started, phases = time.monotonic(), Phases()
    conn, pipeline, run_id, source = run.warehouse, run.pipeline, run.run_id, run.source
    if snapshot:
        paths = list(paths)
        with phases.timed("build_finish"), conn.transaction():
            built = finish_build(run, source_columns)
        if built:  # the extracts copied the snapshot into the build table, now the target
            rows = file_rows(paths)
            with phases.timed("analyze"):
                analyze(conn, pipeline)
            log.info("%s: %d snapshot rows: the build table became the target", pipeline.target, rows)
            return ApplyResult(rows, rows, time.monotonic() - started, (), phases.to_dict())
    with phases.timed("ensure_target"):
        decision = ensure_target(conn, pipeline, source_columns)
    if decision.rejected:
        reject(run, decision, on_schema_change)
    columns = list(decision.columns)
    target = table_ident(pipeline.target)
    staging = sql.Identifier(f"_cdc_{pipeline.name}")
    names = [c.name for c in columns]
    with conn.transaction():
        conn.execute(ADD_VERSION.format(table=target))
        if decision.alters_target:
            with phases.timed("alter_target"):
                alter_target(conn, pipeline, decision, source)
        conn.execute(CREATE_STAGING.format(staging=staging, columns=sql.SQL(", ").join(
            sql.SQL("{} text").format(sql.Identifier(n)) for n in names)))
        with conn.cursor() as cur:
            with phases.timed("copy"):
                staged = _copy(cur, staging, names, paths, run.pipeline.page_bytes)
            merged = 0
            if staged and not snapshot:
                with phases.timed("fill"):
                    _fill_key_changes(cur, pipeline, columns, staging)
            if staged:
                whole = not snapshot and cur.execute(PARTIAL_CHANGES.format(staging=staging)).fetchone() == (False,)
                with phases.timed("merge"):
                    cur.execute(_merge_statement(pipeline, columns, staging, snapshot, whole), {"run_id": run_id})
                merged = max(cur.rowcount, 0)
        recorded = tuple(schema_history.record(conn, pipeline.name, run_id, str(pipeline.target), decision.policy,
                                               decision.changes)) if decision.changes else ()
        commit_started = time.perf_counter()
    phases.add("commit", time.perf_counter() - commit_started)
    if recorded:
        report(pipeline, decision.policy, recorded, on_schema_change)
    result = ApplyResult(staged, merged, time.monotonic() - started, recorded, phases.to_dict())
    log.info("%s: %d change(s) staged, %d key(s) merged in %.2f s", pipeline.target, staged, merged, result.seconds)
    return result
