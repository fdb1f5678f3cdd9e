"""CDC mode (``mode: cdc``): a pipeline fed by a logical replication slot instead of cursor windows.

Stands on :mod:`warehouse_sync.target` (schema DDL, staged files) and imports nothing of
:mod:`warehouse_sync.sync` (cursor mode).

* :mod:`.slot` — publication and slot lifecycle, the exported-snapshot handoff, the confirm after the
  warehouse commit, slot health (retained WAL), ``wal_level`` check, the re-snapshot path.
* :mod:`.reader` — the slot's messages in bounded slices from a temporary copy; the keys of pending changes.
* :mod:`.decode` — the ``pgoutput`` protocol (version 1, text values) into frozen messages.
* :mod:`.columnar` — a run of common-shape change messages decoded column by column into Arrow.
* :mod:`.changes` — the snapshot and each run's changes, in bounded chunks, into Parquet files.
* :mod:`.apply` — COPY of the staged changes and one ``MERGE`` with the commit LSN as the version:
  deletes (soft or hard), unchanged TOAST values kept, the schema policy of :mod:`warehouse_sync.target`.
* :mod:`.mode` — :class:`~.mode.CdcMode`: plan, extract, load and health of the :class:`~warehouse_sync.modes.Mode`
  protocol.
"""
