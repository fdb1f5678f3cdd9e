"""The reconcile loop, owned here from start to end: compare → locate → repair → compare again → alert.

A sync run reconciles its window and checks the whole table up to the window end as the pipeline's
``per_run_table_check`` says: ``keys`` (:mod:`.keys`: the primary keys only, which finds deletes),
``full`` (every column) or ``none``; the daily reconcile DAG reconciles every column of the whole
table up to the pipeline's high watermark. Both go through :func:`reconcile`:

1. **compare** (:mod:`.compare`): row count and checksum on each side over the source's columns
   that the target has (:func:`compared_columns`); equal means done.
2. **locate** (:mod:`.locate`): checksum bisection finds every missing, extra and changed key.
3. **repair** (:mod:`.repair`): within the repair ceiling, re-read and merge, soft/hard-delete;
   above it, nothing changes and :class:`RepairRefused` is raised (after recording it).
   With ``per_run_table_check: keys`` and a matching window, the key check takes the place of
   compare and locate for the rest of the table: what it finds is repaired the same way.
   Keys with a change the source has committed but the sync has not applied yet (``pending``: CDC
   mode's slot holds changes committed after the run's LSN) are **in flight**: not repaired, the
   next run applies them.
4. **compare again**: a difference that remains after the repair is located once more. Made only of
   keys gone from the source (``extra``) or with a pending change, it is **in flight**: the source
   changed them after the first comparison (the repair wrote everything it saw then), as a live source
   does all the time, and the next run checks them again; it is recorded (step ``reconcile_in_flight``,
   status ``deferred``) but neither fails the task nor alerts. Anything else raises :class:`DriftDetected`.
5. **record and alert**: every comparison goes to ``warehouse_sync.audit``, every locate to
   ``warehouse_sync.drift_history``; when keys differed, ``on_drift`` receives the summary
   (the DAG passes an alert through the configured notifiers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable

from warehouse_sync.bookkeeping import audit, marks
from warehouse_sync.bookkeeping.state import read_state
from warehouse_sync.db.catalog import Column, describe_pipeline_source, integer_cursor, read_columns
from warehouse_sync.model import Window
from warehouse_sync.reconcile.compare import Comparison, DriftDetected, compare
from warehouse_sync.reconcile.keys import check_keys, has_integer_key
from warehouse_sync.reconcile.locate import Drift, locate
from warehouse_sync.reconcile.repair import RepairRefused, repair
from warehouse_sync.reconcile.slices import run_key_slice
from warehouse_sync.run import Run

log = logging.getLogger(__name__)
DriftHandler = Callable[[dict[str, Any]], Any]
# The keys (as text, key order) of changes the source committed that the sync has not applied yet.
PendingKeys = Callable[[], set[tuple[str, ...]]]


class NothingLoaded(RuntimeError):
    """The daily reconcile ran before the pipeline's first load (no high watermark yet)."""


@dataclass(frozen=True)
class Reconciliation:
    """What one pass of the loop saw and did.

    Attributes:
        scope: ``window`` (a sync run) or ``table`` (the daily reconcile).
        as_of: Rows with cursor >= ``as_of`` were in flight (UTC).
        comparisons: The final comparisons (after repair, if any), window scope first.
        drift: :meth:`Drift.summary` plus ``repaired`` (rows written), or ``None`` when the first
            comparison matched and nothing was located.
        in_flight: Keys (tuples, key order) whose difference the source's own changes explain: a change
            pending in the CDC slot, or a delete during the run (module docstring, steps 3 and 4); the
            next run checks them again.
    """

    scope: str
    as_of: datetime
    comparisons: tuple[Comparison, ...]
    drift: dict[str, Any] | None
    in_flight: tuple[tuple, ...] = ()

    @property
    def keys_differed(self) -> bool:
        """Whether locate found at least one missing, extra or changed key (in-flight rows aside)."""
        return bool(self.drift and (self.drift["missing"] or self.drift["extra"] or self.drift["changed"]))

    def to_dict(self) -> dict[str, Any]:
        """The XCom form: ``{"scope", "as_of", "comparisons": [...], "drift": {...} | None, "in_flight": n}``."""
        return {"scope": self.scope, "as_of": self.as_of.isoformat(),
                "comparisons": [c.to_dict() for c in self.comparisons], "drift": self.drift,
                "in_flight": len(self.in_flight)}


def reconcile_window(run: Run, window: Window, on_drift: DriftHandler | None = None,
                     pending: PendingKeys | None = None) -> Reconciliation:
    """The sync run's reconcile: its window, and the whole table before its end as ``per_run_table_check`` says.

    Raises:
        RepairRefused: More drift than the repair ceiling (recorded; nothing changed).
        DriftDetected: Drift remains after repair (names table, window, counts, checksums).
    """
    return reconcile(run, window, "window", run.pipeline.per_run_table_check, on_drift, pending)


def reconcile_table(run: Run, as_of: datetime | None, on_drift: DriftHandler | None = None,
                    pending: PendingKeys | None = None) -> Reconciliation:
    """The daily reconcile: every row with cursor < ``as_of``, capped at the high watermark.

    Rows past the watermark are not loaded yet, so they are in flight, not drift. ``as_of`` ``None`` means the
    watermark.

    Raises:
        NothingLoaded: The pipeline has not loaded anything yet.
        RepairRefused: More drift than the repair ceiling.
        DriftDetected: Drift remains after repair.
    """
    pipeline = run.pipeline
    state = read_state(run.warehouse, pipeline.name)
    if state.high_watermark is None:
        raise NothingLoaded(f"{pipeline.name}: nothing loaded yet (no high watermark); run {pipeline.dag_id} first")
    as_of = state.high_watermark if as_of is None else min(as_of, state.high_watermark)
    window = Window(None, as_of)
    if integer_cursor(pipeline, describe_pipeline_source(run.source, pipeline)):
        window = marks.resolve(run.warehouse, pipeline.name, window)
    return reconcile(run, window, "table", "none", on_drift, pending)


def reconcile(run: Run, window: Window, scope: str, table_check: str,
              on_drift: DriftHandler | None = None, pending: PendingKeys | None = None) -> Reconciliation:
    """Runs the loop once: compare, and on a mismatch locate, repair, compare again, alert.

    Args:
        run: Pipeline, source and warehouse connections, run id (stored with repaired rows and in the audit).
        window: What to compare; located keys are those with cursor < ``window.end``.
        scope: ``window`` or ``table``: names the audit steps and the drift-history row.
        table_check: What else of the table before ``window.end`` a ``window`` scope checks:
            ``keys`` (:func:`.keys.check_keys`), ``full`` (every column) or ``none``.
        on_drift: Called with the drift summary when keys differed (after the repair).
        pending: The keys of changes the source committed and the sync has not applied yet (the
            mode's :meth:`~warehouse_sync.modes.Mode.pending_keys`); ``None``: there are none.

    Returns:
        The final comparisons and what was located and repaired.

    Raises:
        RepairRefused: More drift than the repair ceiling (recorded; nothing changed).
        DriftDetected: Drift remains after repair.
    """
    source, warehouse, pipeline = run.source, run.warehouse, run.pipeline
    columns = compared_columns(describe_pipeline_source(source, pipeline),
                               read_columns(warehouse, pipeline.target))
    warehouse.commit()
    drift = None
    if table_check == "keys" and not has_integer_key(pipeline, columns):
        log.warning("%s: the first key column is not an integer, so the per-run key check cannot cut it into "
                    "ranges; checking every column of the table instead (per_run_table_check: full)", pipeline.source)
        table_check = "full"
    full_table = table_check == "full"
    # The daily scope goes straight to locate: its first bisection level counts the whole table anyway.
    comparisons = compare(source, warehouse, pipeline, columns, window, full_table) if scope == "window" else []
    _record(run, comparisons, "")
    residual: Drift | None = None
    held: list[tuple] = []
    found = Drift()
    if not comparisons or not all(c.matches for c in comparisons):
        found, held = _without_pending(_located(run, columns, window, pending), pending)
        drift = _repair_found(run, columns, found, window.end, scope)
        comparisons = compare(source, warehouse, pipeline, columns, window, full_table)
        _record(run, comparisons, "_after_repair" if scope == "window" else "_daily")
        if not all(c.matches for c in comparisons):
            residual = locate(source, warehouse, pipeline, columns, window)
    elif table_check == "keys" and window.start is not None and not any(c.deferred for c in comparisons):
        # A snapshot's window is the whole table already; a deferred window waits for a caught-up run.
        key_slice = run_key_slice(source, pipeline, window.end)
        checked = check_keys(source, warehouse, pipeline, columns, window, key_slice=key_slice)
        if checked.drift.truncated and pending is not None and pending():
            # Keys a pending change explains do not count against the ceiling: tell them apart, all of them.
            checked = check_keys(source, warehouse, pipeline, columns, window, key_slice=key_slice,
                                 bounded=False)
        _record(run, [checked.comparison], "")
        final = checked.comparison
        if checked.drift.total or checked.drift.truncated:
            found, held = _without_pending(checked.drift, pending)
            drift = _repair_found(run, columns, found, window.end, scope)
            # The rest of the key space matched: re-check only the ranges that differed.
            rechecked = check_keys(source, warehouse, pipeline, columns, window, only=checked.leaves)
            final = rechecked.comparison
            _record(run, [final], "_after_repair")
            if not final.matches:
                residual = rechecked.drift
        comparisons = comparisons + [final]
    in_flight, settled = _in_flight(run, window, held, residual, pending, repaired_extra=set(found.extra))
    result = Reconciliation(scope, window.end, tuple(comparisons), drift, in_flight)
    if result.keys_differed and on_drift is not None:
        assert drift is not None  # keys_differed: drift holds what locate found
        on_drift(drift)
    bad = [c for c in comparisons if not c.matches and not settled]
    if bad:
        raise DriftDetected("drift between source and warehouse: "
                            + " | ".join(c.describe(str(pipeline.source)) for c in bad), bad)
    return result


def compared_columns(source_columns: list[Column], target_columns: list[Column]) -> list[Column]:
    """The columns the loop compares and repairs: the source's that the target has, in source order.

    Equal to the source's columns unless the pipeline's ``schema_changes`` left them apart: under
    ``discard`` the target lacks a new source column (it is not compared); a column dropped from the
    source and kept in the target is not a source column (it is not compared either).
    """
    names = {c.name for c in target_columns}
    return [c for c in source_columns if c.name in names]


def _located(run: Run, columns: list[Column], upto: Window, pending: PendingKeys | None) -> Drift:
    """:func:`.locate.locate`, stopped at the repair ceiling unless keys with a pending change are among the drift.

    Those keys are not repaired and do not count against the ceiling (:func:`_without_pending`), so
    when counting stopped and changes are pending, every key is located to tell them apart.
    """
    found = locate(run.source, run.warehouse, run.pipeline, columns, upto)
    if found.truncated and pending is not None and pending():
        found = locate(run.source, run.warehouse, run.pipeline, columns, upto, bounded=False)
    return found


def _repair_found(run: Run, columns: list[Column], found: Drift, as_of: datetime, scope: str) -> dict[str, Any]:
    """Repairs located keys within the ceiling and records them in ``drift_history``."""
    warehouse, name = run.warehouse, run.pipeline.name
    try:
        repaired = repair(run, columns, found).total if found.total or found.truncated else 0
    except RepairRefused:
        warehouse.rollback()
        audit.record_drift(warehouse, name, run.run_id, scope, as_of, found, 0, refused=True)
        raise
    audit.record_drift(warehouse, name, run.run_id, scope, as_of, found, repaired, refused=False)
    return {**found.summary(), "repaired": repaired}


def _as_text(key: tuple) -> tuple[str, ...]:
    return tuple(str(v) for v in key)


def _without_pending(found: Drift, pending: PendingKeys | None) -> tuple[Drift, list[tuple]]:
    """``found`` less the keys a pending change explains (not repaired: the next run applies them), and those keys."""
    if pending is None or not found.total:
        return found, []
    waiting = pending()
    held = [k for k in found.missing + found.extra + found.changed if _as_text(k) in waiting]
    if not held:
        return found, []

    def keep(keys: list[tuple]) -> list[tuple]:
        return [k for k in keys if _as_text(k) not in waiting]

    return replace(found, missing=keep(found.missing), extra=keep(found.extra), changed=keep(found.changed)), held


def _in_flight(run: Run, window: Window, held: list[tuple], residual: Drift | None, pending: PendingKeys | None,
               repaired_extra: set[tuple]) -> tuple[tuple[tuple, ...], bool]:
    """The run's keys in flight and whether they explain every difference left after the repair.

    In flight: keys a pending change explains (``held`` before the repair, and after it), and keys of the
    residual gone from the source that the repair had not been asked to delete (deleted during the run:
    module docstring, step 4). Recorded as step ``reconcile_in_flight`` (status ``deferred``) when there
    are any.

    Returns:
        The keys in flight, and ``True`` when the residual is named and explained entirely by them (no
        drift); ``False`` otherwise: a residual locate cannot name, a key the source still has, or a key
        the repair was asked to delete and did not.
    """
    rest, explained = _without_pending(residual, pending) if residual is not None else (Drift(), [])
    gone = [k for k in rest.extra if k not in repaired_extra]
    keys = tuple(dict.fromkeys([*held, *explained, *gone]))
    if keys:
        log.info("%s: %d key(s) changed at the source during the run (e.g. %s): in flight, checked again next run",
                 run.pipeline.source, len(keys), ", ".join(str(list(k)) for k in keys[:5]))
        run.record("reconcile_in_flight", window, status="deferred", rows=len(keys),
                   detail={"pending": len(set(held) | set(explained)), "deleted_at_source": len(gone),
                           "sample": [list(k) for k in keys[:20]]})
    named = residual is not None and residual.total > 0
    return keys, named and not rest.missing and not rest.changed and len(gone) == len(rest.extra)


def _record(run: Run, comparisons: list[Comparison], suffix: str) -> None:
    for c in comparisons:
        status = "deferred" if c.deferred else ("ok" if c.matches else "drift")
        run.record(f"reconcile_{c.scope}{suffix}", c.window, status=status, rows=c.source.rows, seconds=c.seconds,
                   detail=c.to_dict())
