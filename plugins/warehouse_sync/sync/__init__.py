"""Cursor mode (``mode: cursor``): a straight line :mod:`.plan` → :mod:`.extract` → :mod:`.load`.

It sits behind :class:`.mode.CursorMode`, stands on :mod:`warehouse_sync.target` and imports nothing of
:mod:`warehouse_sync.cdc`.

* :mod:`.mode` — :class:`~.mode.CursorMode`: plan, extract, load and health of the
  :class:`~warehouse_sync.modes.Mode` protocol.
* :mod:`.plan` — the run's window, keyset batch boundaries (never OFFSET).
* :mod:`.keyset` — the keyset order of a window and one batch's predicate (plan, extract, a retried snapshot batch).
* :mod:`.extract` — one batch, page by page in one snapshot, into one Parquet file and, for a
  snapshot into a new target, into the run's build table.
* :mod:`.load` — COPY of the window's files into a staging table, version-guarded merge; a first
  snapshot's build table (:mod:`warehouse_sync.target.build`) indexed and renamed to the target.
"""
