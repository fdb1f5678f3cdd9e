"""The sync mode: how a pipeline's changes are found, behind one protocol, chosen once per task.

A :class:`Mode` is what differs between the two ways a pipeline finds its changes; everything else
(the DAG's shape, the audit rows, failure handling, releasing the late horizon, reconcile and
validate) is the same for both and lives in :mod:`warehouse_sync.tasks`. The two implementations, each in its own
room and neither importing the other (the pattern of dlt's table-loader backends and PeerDB's
connector interfaces):

* :class:`warehouse_sync.sync.mode.CursorMode` (``mode: cursor``) — windows of the cursor column in
  keyset batches;
* :class:`warehouse_sync.cdc.mode.CdcMode` (``mode: cdc``) — a logical replication slot's changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from warehouse_sync.config import Pipeline
from warehouse_sync.model import Batch, Extracted, Health, Loaded, Plan, RunStart
from warehouse_sync.run import Run
from warehouse_sync.target.ddl import SchemaChangeHandler


class Mode(Protocol):
    """What a sync mode implements: four steps and one question; each takes the :class:`~warehouse_sync.run.Run`.

    The steps (plan, extract, load, health) commit what they write to the warehouse; each is idempotent
    for the same plan (a retried task leaves the same warehouse). The question (``pending_keys``) is the
    reconcile's.
    """

    name: str

    def plan(self, run: Run, start: RunStart) -> Plan:
        """Decides the run's window and batches (what the extract task is mapped over)."""
        ...

    def extract(self, run: Run, plan: Plan, batch: Batch, root: Any) -> Extracted:
        """Stages one batch as Parquet files under the staging root ``root``."""
        ...

    def load(self, run: Run, plan: Plan, extracted: Sequence[Extracted], open_path: Callable[[str], Any],
             on_schema_change: SchemaChangeHandler | None = None) -> Loaded:
        """Merges the staged files into the target (version-guarded, one transaction)."""
        ...

    def health(self, run: Run, loaded: Loaded | None = None) -> Health | None:
        """What the mode holds at the source and its thresholds (after a load, or on its own); ``None``: nothing."""
        ...

    def pending_keys(self, run: Run) -> set[tuple[str, ...]]:
        """Keys (text form, key order) of changes the source committed that no run has applied yet.

        The reconcile calls a difference they explain in flight, not drift.
        """
        ...


def mode_for(pipeline: Pipeline, schedule: str | None = None) -> Mode:
    """The pipeline's mode (``pipeline.mode``), imported only when chosen.

    Args:
        pipeline: The table's configuration.
        schedule: The sync DAG's cron expression (UTC): cursor mode's manual runs with a logical date;
            ``None`` (default): the pipeline's own (:attr:`Pipeline.schedule_cron`).
    """
    if pipeline.mode == "cdc":
        from warehouse_sync.cdc.mode import CdcMode

        return CdcMode()
    from warehouse_sync.sync.mode import CursorMode

    return CursorMode(schedule or pipeline.schedule_cron)
