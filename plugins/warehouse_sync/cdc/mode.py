"""CDC mode (``mode: cdc``): :class:`CdcMode`, this mode's side of :class:`warehouse_sync.modes.Mode`.

The DAG's shape and its XCom values stay those of cursor mode (plan → one mapped extract → load →
reconcile, validate); :mod:`warehouse_sync.tasks` records the audit rows and handles failures for
both modes.

* **plan** checks ``wal_level``, the source table and the slot, waits out transactions that began
  before now (as cursor mode does, so the run's reconcile sees no late commit), and fixes the run's
  LSN (``pg_current_wal_lsn()``): the run applies exactly the transactions that committed before it.
  Its window is ``[high watermark, plan time)``, which the reconcile and validate tasks use as in
  cursor mode. A first run (no sync state) or ``full_snapshot`` is a *snapshot* run.
* **extract**: a snapshot run's plan creates publication and slot, cuts the table's key order into
  batches (:func:`warehouse_sync.db.batches.key_batches`) and, for a target that does not exist yet,
  makes the build table (:mod:`warehouse_sync.target.build`), as cursor mode's snapshot does; one
  mapped extract per batch reads its key range as it is then, in a transaction of its own, and
  copies it into the build table too (:func:`.changes.read_snapshot`: the slot's changes, all
  newer, win in the next run); any other run has one extract, which decodes the slot's changes up to
  the plan's LSN. Both write Parquet files of at most ``cdc.chunk_changes`` rows (:mod:`.changes`).
* **load** renames a snapshot's build table to the target, or merges the files with the LSN version
  guard (:mod:`.apply`), then, only after the warehouse commit, confirms the slot at the plan's LSN
  (:func:`.slot.confirm`), in steps through the ends of the extract's slices (:mod:`.reader`):
  advancing a logical slot decodes the WAL it passes.
* **health** measures the slot (retained WAL, lag, changes applied) with alerts over the
  thresholds: after each load, and daily in the reconcile DAG's ``health`` task, so a paused sync
  DAG whose slot keeps WAL still alerts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import psycopg

from warehouse_sync.bookkeeping import marks, state
from warehouse_sync.cdc import slot as slots
from warehouse_sync.cdc.apply import apply_changes
from warehouse_sync.cdc.changes import read_changes, read_snapshot
from warehouse_sync.cdc.reader import pending_keys
from warehouse_sync.config import Pipeline
from warehouse_sync.db.batches import key_batches, max_map_length
from warehouse_sync.db.catalog import describe_pipeline_source, integer_cursor
from warehouse_sync.db.inflight import settle
from warehouse_sync.model import Batch, Extracted, Health, Loaded, Plan, RunStart, Window
from warehouse_sync.run import Run
from warehouse_sync.target import build as build_table
from warehouse_sync.target.ddl import SchemaChangeHandler
from warehouse_sync.timing import Phases

log = logging.getLogger(__name__)

SNAPSHOT, CHANGES = "snapshot", "changes"
# A slot serves one session at a time: the reconcile's peek waits this long (1, 2, 3 s) for another holder.
PEEK_ATTEMPTS, PEEK_RETRY_SECONDS = 3, 1.0
HEALTH_STEP = "cdc_slot"


class NoPastWindows(RuntimeError):
    """A backfill (or a scheduled run of an interval already passed) of a ``mode: cdc`` pipeline.

    A log has no past windows; each run applies every change committed since the last one.
    """


class CdcMode:
    """Every committed change from the pipeline's logical replication slot (module docstring)."""

    name = "cdc"

    def plan(self, run: Run, start: RunStart) -> Plan:
        """Decides what the run reads and fixes its LSN (see the module docstring).

        Returns:
            One batch; ``facts``: ``kind`` (``snapshot`` | ``changes``), ``upto_lsn`` (the LSN the load
            confirms; ``None`` for a snapshot), ``plan_lsn``, ``retained_wal_bytes``, ``keep_slot`` (a
            full snapshot of a live slot: it reads in a pending slot, promoted after its load).

        Raises:
            CdcUnavailable: ``wal_level`` is not ``logical``.
            ReplicaIdentityUnusable: The table's replica identity does not carry the key (nothing published).
            SlotLost: The slot is missing or invalidated after the initial snapshot (message: the way back).
            NoPastWindows: A backfill of a past interval.
        """
        started, phases = time.monotonic(), Phases()
        pipeline, source = run.pipeline, run.source
        with phases.timed("describe"):
            slots.check_wal_level(source, pipeline)
            columns = describe_pipeline_source(source, pipeline)
            slots.check_replica_identity(source, pipeline)
        known = state.read_state(run.warehouse, pipeline.name)
        if (not start.manual and start.interval_end is not None and start.interval_start is not None
                and known.high_watermark is not None and not start.full_snapshot
                # a whole interval older than the watermark: a backfill (a late scheduled run still runs)
                and start.interval_end + (start.interval_end - start.interval_start) < known.high_watermark):
            raise NoPastWindows(
                f"pipeline {pipeline.name} has mode: cdc and already applied the log up to {known.high_watermark}; "
                f"the run of interval ending {start.interval_end} is a past window, and a log has no past windows: "
                "each run applies every change committed since the last one. Nothing to backfill (use "
                "full_snapshot to reload).")
        health = slots.health(source, pipeline.cdc_slot)
        snapshot = start.full_snapshot or known.high_watermark is None
        if not snapshot and (not health.exists or health.invalidated):
            what = ("is missing" if not health.exists else
                    "was invalidated (wal_status lost: the source removed WAL it needed)")
            raise slots.SlotLost(f"pipeline {pipeline.name}: replication slot {pipeline.cdc_slot} {what}, so changes "
                                 f"since the last run may be lost. Way back: {slots.resnapshot_path(pipeline)}.")
        if not snapshot:
            slots.drop_stale_pending(source, pipeline)
        # a full snapshot of a live slot keeps it until the new snapshot is loaded (slot.promote_pending)
        keep_slot = snapshot and known.high_watermark is not None and health.exists and not health.invalidated
        _, now = slots.current_lsn(source)
        with phases.timed("settle"):
            late = settle(run, now)
        slots.log_running_transactions(source)  # lets this run's confirm free WAL at once
        upto_lsn, _ = slots.current_lsn(source)
        window = Window(None if snapshot else known.high_watermark, now)
        if integer_cursor(pipeline, columns):  # the reconcile compares by the cursor's own values
            window, _ = marks.plan_window(source, run.warehouse, pipeline, window)
        why = ("cdc snapshot (first run)" if known.high_watermark is None else
               "cdc snapshot (full_snapshot)" if snapshot else "cdc changes up to " + upto_lsn)
        batches: tuple[Batch, ...] = (Batch(0, None, None),)
        slot_facts: dict[str, Any] = {}
        if snapshot:  # the slot first, then the key ranges its batches read in parallel (read_snapshot)
            read_slot = slots.pending_slot(pipeline) if keep_slot else pipeline.cdc_slot
            with phases.timed("slot"):
                point = slots.create_slot(source, pipeline, read_slot)
            with phases.timed("boundaries"):
                batches = tuple(key_batches(source, pipeline, pipeline.snapshot_batch_size, max_map_length())) \
                    or batches
            with phases.timed("build_table"):  # None when the target exists: the load then merges the files
                build = build_table.prepare(run, columns, version=slots.snapshot_version(point))
            slot_facts = {"consistent_point": point, "slot": read_slot, "build_table": str(build) if build else None}
        log.info("%s: %s, window %s, %d batch(es)", pipeline.name, why, window, len(batches))
        facts = {"mode": self.name, "kind": SNAPSHOT if snapshot else CHANGES,
                 "upto_lsn": None if snapshot else upto_lsn, "plan_lsn": upto_lsn,
                 "retained_wal_bytes": health.retained_wal_bytes, "keep_slot": keep_slot, **slot_facts,
                 **(late.facts or {})}
        return Plan(window, why, batches, late.settled.late_horizon, facts, time.monotonic() - started,
                    phases.to_dict(), late.warnings, late.alerts)

    def extract(self, run: Run, plan: Plan, batch: Batch, root: Any) -> Extracted:
        """Stages the snapshot or the changes up to the plan's LSN (see the module docstring).

        Returns:
            The staged files; ``facts``: ``kind``, ``upto_lsn``, ``consistent_point`` (snapshot), ``slot`` (read),
            ``transactions``, ``oldest_commit``, ``newest_commit`` (UTC ISO text or ``None``), ``checkpoints``
            (where each slice but the last ended: the load confirms through them, :mod:`.reader`).
        """
        pipeline, source = run.pipeline, run.source
        columns = describe_pipeline_source(source, pipeline)
        kind, consistent_point, read_slot = plan.facts["kind"], None, pipeline.cdc_slot
        if kind == SNAPSHOT:
            consistent_point, read_slot = plan.facts["consistent_point"], plan.facts["slot"]
            build = build_table.build_for(run) if plan.facts.get("build_table") else None
            run.warehouse.commit()
            staged = read_snapshot(source, pipeline, columns, consistent_point, batch, plan.window, root,
                                   warehouse=run.warehouse if build else None, build=build)
        else:
            staged = read_changes(source, pipeline, plan.facts["upto_lsn"], plan.window, root)
        facts = {"kind": kind, "upto_lsn": plan.facts["upto_lsn"], "consistent_point": consistent_point,
                 "slot": read_slot,
                 "transactions": staged.transactions, "oldest_commit": staged.oldest_commit,
                 "newest_commit": staged.newest_commit, "checkpoints": list(staged.checkpoints)}
        return Extracted(batch.index, staged.files, staged.changes, staged.seconds, dict(staged.phases), facts)

    def load(self, run: Run, plan: Plan, extracted: Sequence[Extracted], open_path: Callable[[str], Any],
             on_schema_change: SchemaChangeHandler | None = None) -> Loaded:
        """Merges the staged files, then confirms the slot at the plan's LSN.

        A snapshot read in the pending slot (``keep_slot``) makes it the live slot once merged
        (:func:`.slot.promote_pending`).

        Returns:
            ``facts``: ``slot`` (``lag_seconds``: the oldest applied change, commit at the source to
            warehouse commit; ``freshest_lag_seconds``: the newest; ``changes_applied``,
            ``changes_read``, ``slot_moved``).

        Raises:
            SchemaChanged: The policy rejects a difference between source and target (nothing written).
        """
        pipeline = run.pipeline
        files = [f for e in extracted for f in e.files]
        columns = describe_pipeline_source(run.source, pipeline)
        result = apply_changes(run, columns, [open_path(f.path) for f in files], on_schema_change=on_schema_change,
                               snapshot=bool(extracted) and all(e.facts.get("kind") == SNAPSHOT for e in extracted))
        committed = datetime.now(timezone.utc)
        if any(e.facts.get("slot") == slots.pending_slot(pipeline) for e in extracted):
            slots.promote_pending(run.source, pipeline)  # the new snapshot is in: its slot replaces the old one
        upto = next((e.facts["upto_lsn"] for e in extracted if e.facts.get("upto_lsn")), None)
        # in steps through the slices' ends: one advance over the whole backlog could exceed the statement timeout
        steps = [lsn for e in extracted for lsn in e.facts.get("checkpoints") or ()] + [upto] if upto else []
        moved = any([slots.confirm(run.source, pipeline.cdc_slot, lsn) for lsn in steps])
        if moved and upto:
            slots.release_wal(run.source, pipeline.cdc_slot, upto)
        measured = slots.health(run.source, pipeline.cdc_slot)
        oldest = min((datetime.fromisoformat(e.facts["oldest_commit"]) for e in extracted
                      if e.facts.get("oldest_commit")), default=None)
        newest = max((datetime.fromisoformat(e.facts["newest_commit"]) for e in extracted
                      if e.facts.get("newest_commit")), default=None)
        slot = {"retained_wal_bytes": measured.retained_wal_bytes, "wal_status": measured.wal_status,
                "lag_seconds": round((committed - oldest).total_seconds(), 3) if oldest else 0.0,
                "freshest_lag_seconds": round((committed - newest).total_seconds(), 3) if newest else 0.0,
                "changes_applied": result.merged, "changes_read": result.staged,
                "confirmed_lsn": measured.confirmed_flush_lsn, "slot_moved": moved}
        return Loaded(files=len(files), staged=result.staged, merged=result.merged,
                      bytes=sum(f.bytes for f in files), seconds=result.seconds,
                      schema_changes=tuple(c.to_dict() for c in result.schema_changes), phases=result.phases,
                      facts={"slot": slot})

    def health(self, run: Run, loaded: Loaded | None = None) -> Health:
        """The slot's health, after a load or on its own (the daily ``health`` task).

        After a load, from the figures the load measured (``Loaded.facts["slot"]``); on its own, measured now,
        with the lag since the watermark, and a missing or invalidated slot alerts, as does the slot a
        ``full_snapshot`` that never loaded left (:func:`.slot.pending_slot`).

        Returns:
            ``detail``: ``retained_wal_bytes``, ``wal_status``, ``lag_seconds`` and the load's or the
            slot's other figures (:meth:`SlotHealth.to_dict`); ``alerts``: the thresholds crossed.
        """
        pipeline = run.pipeline
        if loaded is not None:
            info = dict(loaded.facts["slot"])
            alerts = threshold_alerts(pipeline, info)
            return Health(HEALTH_STEP, loaded.merged, int(info["retained_wal_bytes"]), tuple(alerts), info)
        measured = slots.health(run.source, pipeline.cdc_slot)
        watermark = state.read_state(run.warehouse, pipeline.name).high_watermark
        info = {**measured.to_dict(), "retained_wal_bytes": measured.retained_wal_bytes,
                "wal_status": measured.wal_status,
                "lag_seconds": (datetime.now(timezone.utc) - watermark).total_seconds() if watermark else 0.0}
        alerts = threshold_alerts(pipeline, info)
        if watermark is not None and (not measured.exists or measured.invalidated):
            alerts.append(f"replication slot {pipeline.cdc_slot} is "
                          f"{'missing' if not measured.exists else 'invalidated'}; "
                          f"way back: {slots.resnapshot_path(pipeline)}")
        pending = slots.health(run.source, slots.pending_slot(pipeline))
        if pending.exists:  # a full_snapshot that never loaded, and no sync run since to drop it
            alerts.append(f"slot {pending.slot} of a full_snapshot that never loaded retains "
                          f"{pending.retained_wal_bytes} bytes of WAL at the source; the next sync run drops it")
        return Health(HEALTH_STEP, 0, measured.retained_wal_bytes, tuple(alerts), info)


    def pending_keys(self, run: Run) -> set[tuple[str, ...]]:
        """The keys of the changes waiting in the slot (committed after the last confirmed run's LSN).

        Read from a temporary copy, never consumed (:func:`.reader.pending_keys`); none when the slot
        is missing (the next plan says so).
        """
        for attempt in range(PEEK_ATTEMPTS):
            try:
                return pending_keys(run.source, run.pipeline)
            except psycopg.errors.UndefinedObject:  # no slot (yet, or lost): nothing is pending in it
                run.source.rollback()
                return set()
            except psycopg.errors.ObjectInUse:  # the sync DAG's extract or load holds the slot right now
                run.source.rollback()
                time.sleep(PEEK_RETRY_SECONDS * (attempt + 1))
        log.warning("%s: slot %s stayed in use by another session; its pending changes are not known to this "
                    "reconcile (differences are repaired as drift)", run.pipeline.name, run.pipeline.cdc_slot)
        return set()


def threshold_alerts(pipeline: Pipeline, slot_info: dict[str, Any]) -> list[str]:
    """One line per threshold crossed (retained WAL bytes, lag seconds); empty when healthy."""
    lines = []
    if slot_info["retained_wal_bytes"] > pipeline.cdc.max_retained_wal_bytes:
        lines.append(f"slot {pipeline.cdc_slot} retains {slot_info['retained_wal_bytes']} bytes of WAL at the source "
                     f"(threshold cdc.max_retained_wal_bytes = {pipeline.cdc.max_retained_wal_bytes})")
    if slot_info["lag_seconds"] > pipeline.cdc.max_lag_seconds:
        lines.append(f"changes reached the warehouse {slot_info['lag_seconds']} s after they committed "
                     f"(threshold cdc.max_lag_seconds = {pipeline.cdc.max_lag_seconds})")
    return lines
