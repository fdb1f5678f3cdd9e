"""One whole run inline: plan → extract every batch → load → reconcile, in this process.

The same task bodies the DAG calls (:mod:`warehouse_sync.tasks`), one after another, without
Airflow: what tests and benchmarks run instead of copies of the DAG's sequence. The DAG itself maps
the extracts over parallel tasks; here they run in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warehouse_sync import tasks
from warehouse_sync.model import Extracted, Loaded, Plan, RunStart
from warehouse_sync.reconcile.loop import Reconciliation
from warehouse_sync.run import Run
from warehouse_sync.target.ddl import SchemaChangeHandler


@dataclass(frozen=True)
class RunResult:
    """Each step's result of one inline run.

    Attributes:
        plan: The plan.
        extracted: One result per batch, in batch order.
        loaded: The load's result.
        reconciled: The reconcile's result, or ``None`` when it was not run.
    """

    plan: Plan
    extracted: tuple[Extracted, ...]
    loaded: Loaded
    reconciled: Reconciliation | None

    @property
    def phases(self) -> dict[str, float]:
        """Every step's phases as ``{"<step>.<phase>": seconds}`` (extract phases summed over batches)."""
        total: dict[str, float] = {f"plan.{k}": v for k, v in self.plan.phases.items()}
        for extracted in self.extracted:
            for key, seconds in extracted.phases.items():
                total[f"extract.{key}"] = round(total.get(f"extract.{key}", 0.0) + seconds, 3)
        total.update({f"load.{k}": v for k, v in self.loaded.phases.items()})
        return total


def run_window(run: Run, start: RunStart, root: Any = None, *, reconcile: bool = True,
               open_path: Callable[[str], Any] = Path,
               on_schema_change: SchemaChangeHandler | None = None) -> RunResult:
    """Runs one whole sync run of ``run.pipeline`` inline (module docstring).

    Args:
        run: The pipeline, its two connections and the run id.
        start: How the run started (e.g. :meth:`RunStart.scheduled` for the interval ``[start, end)``).
        root: Staging root (default: the staging root setting).
        reconcile: Whether to run the reconcile task too.
        open_path: Turns a staged file's path into a readable path (default ``pathlib.Path``).
        on_schema_change: Passed to the load (:func:`warehouse_sync.tasks.load`).

    Returns:
        Each step's typed result.

    Raises:
        Whatever a step raises (the task bodies' errors); steps after it are not run.
    """
    planned = tasks.plan(run, start)
    extracted = tuple(tasks.extract(run, planned, batch, root) for batch in planned.batches)
    loaded = tasks.load(run, planned, extracted, open_path, on_schema_change)
    reconciled = tasks.reconcile(run, planned) if reconcile else None
    return RunResult(planned, extracted, loaded, reconciled)
