"""Cursor mode (``mode: cursor``, the default): windows of the cursor column, read in keyset batches.

:class:`CursorMode` is this mode's side of :class:`warehouse_sync.modes.Mode`; the task bodies in
:mod:`warehouse_sync.tasks` call it and do the audit rows and failure handling for both modes.

* **plan** checks the source, decides the run's window (:func:`.plan.run_window`; an integer
  cursor's values by :mod:`warehouse_sync.bookkeeping.marks`), waits out late commits
  (:func:`warehouse_sync.db.inflight.settle`), cuts keyset batches (:func:`.plan.plan_batches`) and,
  for a snapshot into a new target, creates the run's build table (:func:`warehouse_sync.target.build.prepare`).
* **extract** reads one batch into its Parquet file (and the build table) (:func:`.extract.extract_batch`).
* **load** merges the window's files into the target (:func:`.load.load_files`).
* **health** has nothing to report: a cursor holds nothing at the source.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from warehouse_sync.bookkeeping import marks, state
from warehouse_sync.config import SYNC_SCHEDULE
from warehouse_sync.db.batches import max_map_length
from warehouse_sync.db.catalog import describe_pipeline_source, integer_cursor
from warehouse_sync.db.inflight import settle
from warehouse_sync.model import Batch, Extracted, Health, Loaded, Plan, RunStart
from warehouse_sync.run import Run
from warehouse_sync.sync.extract import extract_batch
from warehouse_sync.sync.load import load_files
from warehouse_sync.sync.plan import check_cursor_not_null, plan_batches, run_window
from warehouse_sync.target import build as build_table
from warehouse_sync.target.ddl import SchemaChangeHandler
from warehouse_sync.timing import Phases

log = logging.getLogger(__name__)


class CursorMode:
    """Windows of the pipeline's cursor column, split into keyset batches (module docstring)."""

    name = "cursor"

    def __init__(self, schedule: str = SYNC_SCHEDULE) -> None:
        """Args: schedule: the sync DAG's cron expression (UTC), for manual runs with a logical date."""
        self.schedule = schedule

    def plan(self, run: Run, start: RunStart) -> Plan:
        """Validates the source, decides the window, settles late commits, cuts keyset batches.

        Returns:
            The plan; ``facts``: ``build_table`` (the snapshot's build table, or ``None``).

        Raises:
            TableNotFound, UnknownColumn, PrimaryKeyError: The source does not fit the config.
            NullableCursor: The cursor column may be NULL (:func:`.plan.check_cursor_not_null`).
        """
        started, phases = time.monotonic(), Phases()
        pipeline = run.pipeline
        with phases.timed("describe"):
            columns = describe_pipeline_source(run.source, pipeline)
            check_cursor_not_null(run.source, pipeline, columns)
        known = state.read_state(run.warehouse, pipeline.name)
        window, why = run_window(pipeline, self.schedule, start, known.high_watermark, known.late_horizon)
        settle_at = window.end
        if integer_cursor(pipeline, columns):
            with phases.timed("marks"):
                window, settle_at = marks.plan_window(run.source, run.warehouse, pipeline, window,
                                                      known.late_horizon)
        with phases.timed("settle"):
            late = settle(run, settle_at)
        late_horizon = late.settled.late_horizon
        if late_horizon is not None:
            state.hold_late_horizon(run.warehouse, pipeline.name, late_horizon)
        with phases.timed("boundaries"):
            batches = plan_batches(run.source, pipeline, window, max_map_length())
        build = None
        if window.is_snapshot and batches:
            with phases.timed("build_table"):
                build = build_table.prepare(run, columns)
        log.info("%s: window %s (%s): %d batch(es) of <= %d rows", pipeline.source, window, why, len(batches),
                 pipeline.snapshot_batch_size if window.is_snapshot else pipeline.batch_size)
        return Plan(window, why, tuple(batches), late_horizon,
                    {"build_table": str(build) if build else None, **(late.facts or {})},
                    time.monotonic() - started, phases.to_dict(), late.warnings, late.alerts)

    def extract(self, run: Run, plan: Plan, batch: Batch, root: Any) -> Extracted:
        """Writes one batch to its Parquet file under ``root``.

        In a snapshot into a new target, also into the run's build table (:mod:`warehouse_sync.target.build`).
        """
        pipeline = run.pipeline
        columns = describe_pipeline_source(run.source, pipeline)
        build = build_table.build_for(run) if plan.window.is_snapshot else None
        run.warehouse.commit()
        return extract_batch(run.source, pipeline, columns, plan.window, batch, root,
                             warehouse=run.warehouse if build else None, build=build)

    def load(self, run: Run, plan: Plan, extracted: Sequence[Extracted], open_path: Callable[[str], Any],
             on_schema_change: SchemaChangeHandler | None = None) -> Loaded:
        """COPYs the window's files into staging and merges them into the target in one transaction.

        First applies the source schema changes the ``schema_changes`` policy accepts.

        Raises:
            SchemaChanged: The policy rejects a schema change (nothing is written but its history rows).
        """
        pipeline = run.pipeline
        files = [f for e in sorted(extracted, key=lambda e: e.batch_index) for f in e.files]
        columns = describe_pipeline_source(run.source, pipeline)
        result = load_files(run, columns, [open_path(f.path) for f in files], snapshot=plan.window.is_snapshot,
                            on_schema_change=on_schema_change)
        return Loaded(files=len(files), staged=result.staged, merged=result.merged,
                      bytes=sum(f.bytes for f in files), seconds=result.seconds, backfilled=result.backfilled,
                      schema_changes=tuple(c.to_dict() for c in result.schema_changes), phases=result.phases)

    def health(self, run: Run, loaded: Loaded | None = None) -> Health | None:
        """Nothing to report: a cursor pipeline holds no resource at the source."""
        return None

    def pending_keys(self, run: Run) -> set[tuple[str, ...]]:
        """None: a row changed after a window has a cursor past its end, which the reconcile leaves out already."""
        return set()
