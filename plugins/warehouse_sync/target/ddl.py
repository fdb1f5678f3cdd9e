"""The target's DDL, for both modes: create it, apply the schema changes a policy accepts, reject the rest.

A target keeps the source's column names and types (the type policy's exceptions, :mod:`.types`:
enums as ``text``, domains as their base type, types the warehouse lacks as ``text``) and adds
``_synced_at``, ``_run_id`` and ``_deleted_at`` (CDC also ``_lsn``). When source and target columns
differ, :mod:`.schema` decides under the pipeline's ``schema_changes`` policy and this module runs
the decision in the caller's load transaction: ``ALTER TABLE`` (add a column, widen a type, drop the
``NOT NULL`` of a column gone from the source), then the back-fill of added columns for the rows
already in the target (key, cursor and the new columns streamed from the source by ``COPY`` into a
temporary table, then one ``UPDATE`` of the rows whose cursor equals the source's). A change the
policy rejects is recorded in ``warehouse_sync.schema_history``, reported, and raised as
:class:`SchemaChanged` naming table, column, both types and the way out, before anything is written,
so a source schema change never breaks the sink silently.

After a load: :func:`ensure_cursor_index` (window queries on the warehouse side read by cursor) and
:func:`analyze` (only when the load moved the statistics).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import sql

from warehouse_sync.bookkeeping import schema_history
from warehouse_sync.config import Pipeline
from warehouse_sync.db.catalog import (
    Column,
    TableNotFound,
    column_definitions,
    read_columns,
    relation_exists,
    row_estimate,
)
from warehouse_sync.db.statements import (
    COPY_CSV,
    DDL_LOCK,
    cursor_index,
    idents,
    load_sql,
    table_ident,
    tombstone_index,
)
from warehouse_sync.run import Run
from warehouse_sync.target.schema import ColumnChange, SchemaChanged, SchemaDecision, decide
from warehouse_sync.target.types import kept_as_found, warehouse_columns

log = logging.getLogger(__name__)

METADATA_PREFIX = "_"
TARGET_IS_EMPTY = sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {table})")
# Window queries on the warehouse side (validate, the window comparison) read by cursor. Built at the
# end of the first load's transaction (a snapshot copies faster into a table without it).
CURSOR_INDEX = sql.SQL("CREATE INDEX IF NOT EXISTS {index} ON {table} ({cursor})")
ALTER_TARGET = sql.SQL("ALTER TABLE {table} {actions}")
CREATE_BACKFILL = sql.SQL("CREATE TEMP TABLE {backfill} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA")
FETCH_BACKFILL = sql.SQL("COPY (SELECT {columns} FROM {table}) TO STDOUT (FORMAT csv)")

# Called after the load with the schema changes it recorded (the DAG passes an alert through the notifiers).
SchemaChangeHandler = Callable[[dict[str, Any]], Any]


def ensure_target(conn: psycopg.Connection, pipeline: Pipeline, source_columns: list[Column]) -> SchemaDecision:
    """Creates the target table if missing, else compares its columns with the source's.

    The source's columns are compared in their warehouse types (:mod:`.types`: an enum as ``text``,
    a domain as its base type, …), which is also what a new target is created with.

    Returns:
        What the load does about the differences (:func:`warehouse_sync.target.schema.decide` under
        the pipeline's ``schema_changes``); no change for a table just created. Its columns carry the
        warehouse types. An existing target is not altered here: the load runs the decision in its
        transaction.
    """
    wanted = warehouse_columns(conn, source_columns)
    try:
        target_columns = [c for c in read_columns(conn, pipeline.target) if not c.name.startswith(METADATA_PREFIX)]
    except TableNotFound:
        definitions = column_definitions(wanted)
        with conn.transaction():
            conn.execute(DDL_LOCK)
            conn.execute(load_sql(
                "target/create_target.sql", schema=sql.Identifier(pipeline.target.schema),
                table=table_ident(pipeline.target), column_defs=definitions, primary_key=idents(pipeline.primary_key),
                tombstones=sql.Identifier(tombstone_index(pipeline.target)),
            ))
        conn.commit()
        log.info("created target table %s", pipeline.target)
        return decide(wanted, wanted, pipeline.schema_changes)
    conn.commit()
    return decide(kept_as_found(wanted, source_columns, target_columns), target_columns, pipeline.schema_changes)


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


def report(pipeline: Pipeline, policy: str, changes: Iterable[ColumnChange],
           on_schema_change: SchemaChangeHandler | None) -> None:
    """Logs the recorded schema changes and passes them to ``on_schema_change`` (the DAG's alert).

    What it passes: ``{"table", "source", "policy", "changes": [ColumnChange.to_dict(), ...]}``.
    """
    changes = list(changes)
    for change in changes:
        log.warning("%s: schema change (%s): %s: %s, %s", pipeline.target, policy, change.describe(), change.outcome,
                    change.detail)
    if on_schema_change is not None:
        on_schema_change({"table": str(pipeline.target), "source": str(pipeline.source), "policy": policy,
                          "changes": [c.to_dict() for c in changes]})


def reject(run: Run, decision: SchemaDecision, on_schema_change: SchemaChangeHandler | None) -> None:
    """Records the refused changes (every difference seen, committed on its own), reports them, raises.

    Raises:
        SchemaChanged: Always: its message names table, columns, types and the way out.
    """
    conn, pipeline = run.warehouse, run.pipeline
    with conn.transaction():
        recorded = schema_history.record(conn, pipeline.name, run.run_id, str(pipeline.target), decision.policy,
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
    """Gives the target's rows the source's values of the ``added`` columns, by key.

    Only where the target holds the source's current version (same cursor); a newer source version arrives with
    a merge.

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
        "target/backfill_columns.sql", table=table_ident(pipeline.target), backfill=backfill,
        assignments=sql.SQL(", ").join(sql.SQL("{c} = b.{c}").format(c=sql.Identifier(c.name)) for c in added),
        join=sql.SQL(" AND ").join(sql.SQL("t.{k} = b.{k}").format(k=sql.Identifier(k)) for k in pipeline.primary_key),
        cursor=sql.Identifier(pipeline.cursor),
    )).rowcount
    log.info("%s: back-filled %s for %d existing rows", pipeline.target, ", ".join(c.name for c in added), updated)
    return max(updated, 0)


# ANALYZE after a load only when its statistics would be off: none yet (a new target), or the load
# changed at least this share of the rows they describe, autovacuum's own default
# (autovacuum_analyze_scale_factor), which otherwise analyzes in the background. An incremental
# window changes far less: its ANALYZE cost a two-hourly run 0.4 s (orders) to 1.1 s (lineitem) at SF 1.
ANALYZE_SHARE = 0.1


def analyze(conn: psycopg.Connection, pipeline: Pipeline, changed: int | None = None) -> None:
    """ANALYZE after a load that changed rows (``changed``; ``None``: all of them).

    It keeps the plans of later merges and reconciles sane; it is skipped when the change is too small to move
    the statistics (:data:`ANALYZE_SHARE`). The load itself has committed, so a failure here is only logged.
    """
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


def ensure_cursor_index(conn: psycopg.Connection, pipeline: Pipeline) -> None:
    """Builds the target's cursor index inside the load's transaction, once.

    ``to_regclass`` looks it up without a table lock, so a load never queues behind other writers for an index
    that exists.
    """
    name = cursor_index(pipeline.target, pipeline.cursor)
    target = table_ident(pipeline.target)
    if not relation_exists(conn, pipeline.target.schema, name):
        conn.execute(CURSOR_INDEX.format(index=sql.Identifier(name), table=target,
                                         cursor=sql.Identifier(pipeline.cursor)))
