"""Warehouse Sync: what an Airflow worker runs to keep a PostgreSQL warehouse in step with OLTP tables.

Rooms, in the order a run meets them (each depends only on the rooms above it)::

    model        plain frozen values: TableRef, Window, Batch, RunStart; step results Plan, Extracted,
                 Loaded, Health (each with its phase timings)
    timing       Phases: seconds per phase of a step
    config       the pipeline file as pydantic models (Pipeline, CdcSettings, Alerts and routes, Expectation)
    redact       source row values cut from error messages before audit rows and alerts
    db           connections (Airflow Connections), SQL statements (package data), the catalog, late commits
    storage      where files are: config path, staging root, reports root
    bookkeeping  audit trail, sync state (watermark, late horizon), schema history, the bookkeeping tables' DDL
    run          Run: pipeline, source, warehouse, run id: what every step takes
    target       what both modes write through: schema decisions and DDL, bulk COPY, staged Parquet files
    sync         cursor mode: plan -> extract -> load, keyset batches, the snapshot build table
    cdc          CDC mode: replication slot and publication, pgoutput decoder, change staging,
                 LSN-guarded merge
    modes        the Mode protocol (plan, extract, load, health) and mode_for(pipeline)
    reconcile    compare -> locate -> repair -> compare -> alert, owned by reconcile.loop
    metrics      freshness, rows, bytes, drift and slot figures through Airflow's metrics; the freshness deadline
    lineage      OpenLineage datasets and facets of a load and a validate
    quality      validate (Great Expectations), the suite, the data-quality page and its app
    alerts       notifiers per route (SMTP, Slack webhook, any Airflow notifier)
    tasks        the task bodies the DAG file wires, one call each: the mode chosen once, audit, failures
    inline       run_window: one whole run inline (tests, benchmarks)

Nothing is imported here, so that the DAG file's parse stays cheap; import the module you need.
"""
