"""Warehouse Sync: one incremental ELT DAG per table in ``include/pipelines.yaml``.

Every two hours a run owns its data interval ``[data_interval_start, data_interval_end)`` of the
table's cursor column and runs::

    plan ──> extract (mapped, one per keyset batch) ──> load (COPY + version-guarded merge) ──> reconcile

Trigger with ``{"full_snapshot": true}`` to read every row with cursor < data_interval_end (the
initial snapshot, or a reload after a schema change). Logic lives in ``plugins/warehouse_sync``;
this file is wiring only: no database call happens at parse time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from warehouse_sync.config import Pipeline, load_config

SCHEDULE = "0 */2 * * *"
DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": int(os.environ.get("WAREHOUSE_SYNC_RETRIES", "2")),
    "retry_delay": timedelta(seconds=float(os.environ.get("WAREHOUSE_SYNC_RETRY_DELAY_SECONDS", "30"))),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def build_dag(pipeline: Pipeline):
    """Builds the sync DAG of one pipeline."""

    @dag(
        dag_id=pipeline.dag_id,
        description=f"Incremental sync {pipeline.source} -> warehouse {pipeline.target}",
        schedule=CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["warehouse-sync", pipeline.name, *pipeline.tags],
        params={"full_snapshot": Param(False, type="boolean",
                                       description="Read all rows with cursor < data_interval_end")},
        doc_md=__doc__,
    )
    def sync():
        @task
        def plan(data_interval_start=None, data_interval_end=None, run_id=None, params=None, ti=None):
            """Returns the batches to map over; pushes the window (with its late horizon) as XCom 'window'."""
            from warehouse_sync import steps
            from warehouse_sync.connections import source_and_warehouse

            with source_and_warehouse() as (src, wh):
                planned = steps.plan(src, wh, pipeline, data_interval_start, data_interval_end, run_id,
                                     bool((params or {}).get("full_snapshot")))
            ti.xcom_push(key="window", value={**planned["window"], "late_horizon": planned["own_horizon"]})
            return planned["batches"]

        @task(map_index_template="{{ task.op_kwargs['batch']['index'] }}")
        def extract(batch: dict, window: dict, run_id=None):
            from warehouse_sync import steps
            from warehouse_sync.connections import source_and_warehouse

            with source_and_warehouse() as (src, wh):
                return steps.extract(src, wh, pipeline, window, batch, run_id)

        @task(trigger_rule="none_failed")
        def load(files, window: dict, run_id=None):
            from warehouse_sync import steps
            from warehouse_sync.connections import source_and_warehouse

            batch_files = [files[i] for i in range(len(files))] if files is not None else []  # no lookup past the end
            with source_and_warehouse() as (src, wh):
                return steps.load(src, wh, pipeline, window, batch_files, run_id, window.get("late_horizon"))

        @task(trigger_rule="none_failed")
        def reconcile(window: dict, run_id=None):
            from warehouse_sync import steps
            from warehouse_sync.connections import source_and_warehouse

            with source_and_warehouse() as (src, wh):
                return steps.check(src, wh, pipeline, window, run_id)

        planned = plan()
        files = extract.partial(window=planned["window"]).expand_kwargs(planned)
        loaded = load(files, planned["window"])
        loaded >> reconcile(planned["window"])

    return sync()


for _pipeline in load_config().pipelines:
    globals()[_pipeline.dag_id] = build_dag(_pipeline)
