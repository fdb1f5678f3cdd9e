"""Warehouse Sync: what an Airflow worker runs to keep a PostgreSQL warehouse in step with OLTP tables.

Rooms, in the order a run meets them (each depends only on the rooms above it)::

    model        Window, Batch, TableRef, RunStart: plain frozen values every room shares
    config       the pipeline file as pydantic models (Pipeline, Alerts, Expectation)
    db           connections (Airflow Connections), SQL statements (package data), the catalog
    storage      where files are: config path, staging root, reports root
    bookkeeping  audit trail, sync state (watermark, late horizon), schema history, the bookkeeping tables' DDL
    sync         plan -> extract -> load: windows, keyset batches, Parquet, COPY + version-guarded merge;
                 schema changes (schema decides under the schema_changes policy, load runs the DDL);
                 staging (staged file names, orphans, retention)
    cdc          mode: cdc: replication slot and publication, pgoutput decoder, change staging,
                 LSN-guarded merge (uses sync's load and schema policy)
    reconcile    compare -> locate -> repair -> compare -> alert, owned by reconcile.loop
    quality      validate (Great Expectations), the suite, the data-quality page and its app
    alerts       notifiers (SMTP, Slack webhook)
    tasks        the task bodies the DAG file wires, one call each

Nothing is imported here, so that the DAG file's parse stays cheap; import the module you need.
"""
