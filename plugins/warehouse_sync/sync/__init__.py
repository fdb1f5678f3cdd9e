"""The data path of a sync run, a straight line: :mod:`.plan` → :mod:`.extract` → :mod:`.load`.

* :mod:`.plan` — the run's window, keyset batch boundaries (never OFFSET), late commits waited out.
* :mod:`.extract` — one batch, page by page in one snapshot, into one Parquet file (tmp + rename).
* :mod:`.load` — COPY of the window's files into a staging table, version-guarded merge; the
  target's DDL (create, cursor index, the schema changes it applies).
* :mod:`.schema` — source vs target columns and the pipeline's ``schema_changes`` policy.
* :mod:`.staging` — staged file names, a killed extract's orphans, retention of old windows.
"""
