"""The data path of a sync run, a straight line: :mod:`.plan` → :mod:`.extract` → :mod:`.load`.

* :mod:`.plan` — the run's window, keyset batch boundaries (never OFFSET), late commits waited out.
* :mod:`.extract` — one batch, page by page in one snapshot, into one Parquet file (tmp + rename)
  and, for a snapshot into a new target, into the run's build table.
* :mod:`.load` — COPY of the window's files into a staging table, version-guarded merge; the
  target's DDL (create, cursor index, the schema changes it applies).
* :mod:`.snapshot` — a first snapshot's build table: made by the plan, filled by the extracts,
  indexed and renamed to the target by the load.
* :mod:`.bulk_copy` — Arrow record batches into a table by binary (or CSV) ``COPY``.
* :mod:`.schema` — source vs target columns and the pipeline's ``schema_changes`` policy.
* :mod:`.staging` — staged file names, a killed extract's orphans, retention of old windows.
"""
