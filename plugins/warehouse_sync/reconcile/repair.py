"""Repair drift found by :mod:`warehouse_sync.reconcile.locate`, within a ceiling, in one warehouse transaction.

* Missing and changed keys are re-read from the source by key (``COPY … TO STDOUT`` streamed straight
  into ``COPY … FROM STDIN`` of a staging table) and merged *without* the version guard: the source
  is the system of record, and cursors do go backwards (a transaction that took ``now()`` early and
  committed late, application-set timestamps, clock changes).
* Keys deleted at the source are soft-deleted (``_deleted_at`` set, row kept) or, for tables with
  ``delete_mode: hard``, deleted. A soft-deleted key that reappears at the source is restored.
* Beyond ``repair_max_rows`` keys or ``repair_max_fraction`` of the table nothing is changed and
  :class:`RepairRefused` is raised: mass drift usually means a bug or a wrong connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from psycopg import sql

from warehouse_sync.config import Pipeline
from warehouse_sync.db.catalog import Column, hash_inputs
from warehouse_sync.db.statements import COPY_CSV, CREATE_STAGING, idents, load_sql, table_ident
from warehouse_sync.reconcile.locate import Drift, key_join, repair_ceiling
from warehouse_sync.run import Run

log = logging.getLogger(__name__)


class RepairRefused(RuntimeError):
    """More drift than the repair ceiling allows; the message names table, counts and the ceiling."""


@dataclass(frozen=True)
class RepairResult:
    """Rows written by a repair: upserted (missing + changed) and deleted (soft or hard)."""

    upserted: int
    deleted: int

    @property
    def total(self) -> int:
        """Rows written: upserted plus deleted."""
        return self.upserted + self.deleted


def check_ceiling(pipeline: Pipeline, diff: Drift) -> None:
    """Raises :class:`RepairRefused` when the diff is larger than the pipeline's repair ceiling.

    Also when locating stopped at the ceiling (``diff.truncated``): then the counts are of the keys
    collected before it stopped, and the message says at least how many differ.
    """
    limit = repair_ceiling(pipeline, diff.rows)
    if diff.truncated or diff.total > limit:
        counted = f"at least {max(diff.at_least, diff.total)} rows differ (counting stopped at the ceiling; " \
            "collected: " if diff.truncated else f"{diff.total} rows differ ("
        raise RepairRefused(
            f"{pipeline.target}: {counted}{len(diff.missing)} missing, "
            f"{len(diff.extra)} extra, {len(diff.changed)} changed of {diff.rows}) from {pipeline.source}; "
            f"the repair ceiling is {limit} "
            f"(repair_max_rows={pipeline.repair_max_rows}, repair_max_fraction={pipeline.repair_max_fraction}). "
            "Nothing was changed: check the connections and the pipeline before raising the ceiling."
        )


def repair(run: Run, columns: list[Column], diff: Drift) -> RepairResult:
    """Makes the warehouse match the source for every key in ``diff`` (idempotent).

    Args:
        run: Pipeline, both connections, and the run id stored in the repaired rows' ``_run_id``.
        columns: The compared columns (:func:`.loop.compared_columns`).
        diff: What :func:`.locate.locate` (or the key check) found.

    Raises:
        RepairRefused: The diff exceeds the ceiling (nothing changed).
    """
    source, warehouse, pipeline, run_id = run.source, run.warehouse, run.pipeline, run.run_id
    check_ceiling(pipeline, diff)
    names = [c.name for c in columns]
    target = table_ident(pipeline.target)
    upserted = deleted = 0
    with warehouse.transaction():
        stale = diff.missing + diff.changed
        if stale:
            staging = sql.Identifier(f"_repair_{pipeline.name}")
            warehouse.execute(CREATE_STAGING.format(staging=staging, table=target))
            joined = key_join(pipeline, columns, stale)
            fetch = load_sql("reconcile/repair_fetch.sql", columns=idents(names, "r"),
                             table=table_ident(pipeline.source), **joined["parts"])
            with source.cursor() as out, out.copy(fetch, joined["params"]) as reader, warehouse.cursor() as cur:
                with cur.copy(COPY_CSV.format(table=staging, columns=idents(names))) as writer:
                    for chunk in reader:
                        writer.write(chunk)
            source.commit()
            assignments = sql.SQL(", ").join(
                sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(n)) for n in names
                if n not in pipeline.primary_key
            )
            upserted = warehouse.execute(load_sql(
                "reconcile/merge_repair.sql", table=target, staging=staging, columns=idents(names),
                primary_key=idents(pipeline.primary_key), assignments=assignments,
                # Types without an equality operator (json, point, …) compare by their text form.
                target_row=hash_inputs(columns, "t"), excluded_row=hash_inputs(columns, "excluded"),
            ), {"run_id": run_id}).rowcount
        if diff.extra:
            joined = key_join(pipeline, columns, diff.extra)
            statement = "reconcile/hard_delete.sql" if pipeline.delete_mode == "hard" else "reconcile/soft_delete.sql"
            deleted = warehouse.execute(load_sql(statement, table=target, **joined["parts"]),
                                        {**joined["params"], "run_id": run_id}).rowcount
    log.info("%s: repaired %d rows (upserted) and %s-deleted %d", pipeline.target, upserted, pipeline.delete_mode,
             deleted)
    return RepairResult(upserted=max(upserted, 0), deleted=max(deleted, 0))
