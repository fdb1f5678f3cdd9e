"""What both sync modes write through: the target's schema and DDL, bulk COPY, and staged files.

Neither mode's room (:mod:`warehouse_sync.sync`, :mod:`warehouse_sync.cdc`) imports the other; both
stand on this one.

* :mod:`.types` — the warehouse type of each source column (enum → text, domain → base type, a type
  the warehouse lacks → its text form).
* :mod:`.schema` — source vs target columns and the pipeline's ``schema_changes`` policy (pure).
* :mod:`.ddl` — create the target, run the policy's decision (alter, back-fill), reject and report;
  the cursor index and ANALYZE after a load.
* :mod:`.bulk_copy` — Arrow record batches (or Parquet files) into a table by binary (or CSV) ``COPY``.
* :mod:`.build` — a snapshot into a new target: the build table the plan makes, the extracts fill
  and the load indexes and renames to the target (both modes).
* :mod:`.parquet` — the one staged-file writer: temporary name, rename, orphans, snappy.
* :mod:`.staging` — staged file names and folders, a killed write's orphans, retention of old windows.
"""
