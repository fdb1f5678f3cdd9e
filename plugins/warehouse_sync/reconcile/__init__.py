"""Reconciliation: is the warehouse equal to the source, and if not, which keys differ and why.

:mod:`.loop` owns the whole loop (compare → locate → repair → compare again → record → alert);
:mod:`.compare` (counts and checksums), :mod:`.locate` (checksum bisection, after reladiff),
:mod:`.keys` (the per-run key check: deletes found from the primary-key indexes), :mod:`.segments`
(how the key check cuts the key range, level by level), :mod:`.slices` (which slice of the key
range a run checks) and
:mod:`.repair` (within a ceiling) are its parts.
"""

from warehouse_sync.reconcile.compare import Comparison, DriftDetected
from warehouse_sync.reconcile.locate import Drift
from warehouse_sync.reconcile.loop import NothingLoaded, Reconciliation, reconcile_table, reconcile_window
from warehouse_sync.reconcile.repair import RepairRefused

__all__ = ["Comparison", "Drift", "DriftDetected", "NothingLoaded", "Reconciliation", "RepairRefused",
           "reconcile_table", "reconcile_window"]
