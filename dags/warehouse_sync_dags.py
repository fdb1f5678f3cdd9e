"""Warehouse Sync: per table in ``include/pipelines.yaml`` an incremental ELT DAG ``sync_<name>`` and a
daily whole-table reconcile DAG ``reconcile_<name>``.

On the pipeline's ``schedule:`` (cron or preset, UTC; every two hours by default) a run owns its data
interval ``[data_interval_start, data_interval_end)`` of the table's cursor column and runs::

    plan ──> extract (mapped, one per keyset batch) ──> load (COPY + version-guarded merge) ──┬─> reconcile
                                                                                              └─> validate

A pipeline's first run is an initial snapshot; a run triggered without a logical date syncs from the
watermark to the trigger time; one with a logical date syncs that date's scheduled interval; trigger
with ``{"full_snapshot": true}`` to read every row before the window end (docs/operating.md).
A ``mode: cdc`` pipeline has the same tasks, fed by its logical replication slot instead of windows of
the cursor (docs/cdc.md): ``warehouse_sync.tasks`` chooses the mode once per task. Each task body
is one call into ``warehouse_sync.tasks``, which names the module that owns each behaviour; this
file is wiring only: no database call, no Variable, no heavy import at parse time (the pipeline
file is read from ``$WAREHOUSE_SYNC_CONFIG`` or ``include/pipelines.yaml`` beside the DAGs folder).
Values cross tasks as the typed results' ``to_dict()`` form: the plan as XCom ``plan``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from functools import partial

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task

from warehouse_sync.alerts import alert_drift, alert_failure, alert_health, alert_plan, alert_schema_change
from warehouse_sync.config import RECONCILE_SCHEDULE, Alerts, Pipeline, read_config
from warehouse_sync.storage import config_path

DEFAULT_ARGS = {
    "owner": "data-engineering",
    "retries": int(os.environ.get("WAREHOUSE_SYNC_RETRIES", "2")),
    "retry_delay": timedelta(seconds=float(os.environ.get("WAREHOUSE_SYNC_RETRY_DELAY_SECONDS", "30"))),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def common_dag_args(pipeline: Pipeline, alerts: Alerts, schedule: str) -> dict:
    """What both DAGs of a pipeline share: UTC data-interval schedule, one run at a time, retries with
    backoff, and an alert when a task fails after its last retry."""
    return {
        "schedule": CronDataIntervalTimetable(schedule, timezone="UTC"),
        "start_date": datetime(2026, 1, 1, tzinfo=timezone.utc),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {**DEFAULT_ARGS,
                         # each task sets its own; the longest bounds a task that does not
                         "execution_timeout": pipeline.task_timeout_minutes.longest,
                         "on_failure_callback": partial(alert_failure, alerts=alerts, table=str(pipeline.target))},
    }


def build_dag(pipeline: Pipeline, alerts: Alerts):
    """Builds the sync DAG of one pipeline."""

    @dag(
        dag_id=pipeline.dag_id,
        description=f"Incremental sync {pipeline.source} -> warehouse {pipeline.target}",
        **common_dag_args(pipeline, alerts, pipeline.schedule),
        tags=["warehouse-sync", pipeline.name, *pipeline.tags],
        params={"full_snapshot": Param(False, type="boolean",
                                       description="Read every row with cursor before the run's window end")},
        doc_md=__doc__,
    )
    def sync():
        # The synced window is the plan's label in the UI (its rendered map index), beside the run's data interval.
        @task(execution_timeout=pipeline.execution_timeout("plan"), map_index_template="{{ synced_window }}")
        def plan(dag_run=None, run_id=None, params=None, ti=None):
            """Returns the batches to map over; pushes the plan (window, why, late horizon, batches) as XCom 'plan'."""
            from warehouse_sync import tasks
            from warehouse_sync.model import RunStart
            from warehouse_sync.run import opened

            with tasks.fail_fast(), opened(pipeline, run_id) as run:
                planned = tasks.plan(run, RunStart.from_dag_run(dag_run, params))
            get_current_context()["synced_window"] = planned.label  # type: ignore[typeddict-unknown-key]
            alert_plan(get_current_context(), alerts, str(pipeline.target), list(planned.alerts))
            ti.xcom_push(key="plan", value=planned.to_dict(with_batches=False))  # each extract gets its batch
            return planned.expand()

        # default_pool unless the pipeline names a pool (config/pools.py); at most extract_pool_slots per run
        @task(map_index_template="{{ task.op_kwargs['batch']['index'] }}",
              execution_timeout=pipeline.execution_timeout("extract"),
              pool=pipeline.extract_pool_name, max_active_tis_per_dagrun=pipeline.extract_pool_slots)
        def extract(batch: dict, plan: dict, run_id=None):
            from warehouse_sync import tasks
            from warehouse_sync.model import Batch, Plan
            from warehouse_sync.run import opened

            with tasks.fail_fast(), opened(pipeline, run_id) as run:
                return tasks.extract(run, Plan.from_dict(plan), Batch.from_dict(batch)).to_dict()

        @task(trigger_rule="none_failed", execution_timeout=pipeline.execution_timeout("load"),
              outlets=[Asset(pipeline.asset_uri)])  # a successful load is an asset event: downstream DAGs run
        def load(extracted, plan: dict, run_id=None):
            from warehouse_sync import lineage, tasks
            from warehouse_sync.model import Extracted, Plan
            from warehouse_sync.run import opened

            # no lookup past the end of the mapped results
            staged = [Extracted.from_dict(extracted[i]) for i in range(len(extracted))] if extracted is not None else []
            context = get_current_context()
            on_schema_change = partial(alert_schema_change, context, alerts, str(pipeline.target))
            with tasks.fail_fast(), opened(pipeline, run_id) as run:
                loaded = tasks.load(run, Plan.from_dict(plan), staged, on_schema_change=on_schema_change)
                lineage.report_load(context["task"], run, loaded)  # OpenLineage: source in, target out, counts
            alert_health(context, alerts, str(pipeline.target), list(loaded.alerts))
            return loaded.to_dict()

        @task(trigger_rule="none_failed", execution_timeout=pipeline.execution_timeout("reconcile"))
        def reconcile(plan: dict, run_id=None):
            from warehouse_sync import tasks
            from warehouse_sync.model import Plan
            from warehouse_sync.run import opened

            on_drift = partial(alert_drift, get_current_context(), alerts, str(pipeline.target))
            with tasks.fail_fast(), opened(pipeline, run_id) as run:
                return tasks.reconcile(run, Plan.from_dict(plan), on_drift).to_dict()

        @task(trigger_rule="none_failed", execution_timeout=pipeline.execution_timeout("validate"))
        def validate(plan: dict, run_id=None):
            """Great Expectations on the window's rows; a failed `fail` expectation fails the run, without retries."""
            from contextlib import closing

            from warehouse_sync import lineage, tasks
            from warehouse_sync.db.connections import connect_uri, connection_uri, sqlalchemy_url
            from warehouse_sync.model import Plan

            with tasks.fail_fast():  # one lookup of the connection, for psycopg and for Great Expectations
                uri = connection_uri(pipeline.warehouse_conn_id, lock_timeout_seconds=pipeline.lock_timeout_seconds)
                with closing(connect_uri(uri, pipeline.warehouse_conn_id)) as wh:
                    on_summary = lineage.quality_reporter(get_current_context()["task"], wh, pipeline.target)
                    return tasks.validate(wh, sqlalchemy_url(uri), pipeline, Plan.from_dict(plan), run_id, on_summary)

        planned = plan()
        staged = extract.partial(plan=planned["plan"]).expand_kwargs(planned)
        loaded = load(staged, planned["plan"])
        loaded >> [reconcile(planned["plan"]), validate(planned["plan"])]

    return sync()


def build_reconcile_dag(pipeline: Pipeline, alerts: Alerts):
    """Builds the daily whole-table reconcile (locate, repair, record) of one pipeline."""

    @dag(
        dag_id=f"reconcile_{pipeline.name}",
        description=f"Daily reconcile and repair of warehouse {pipeline.target} against {pipeline.source}",
        **common_dag_args(pipeline, alerts, RECONCILE_SCHEDULE),
        tags=["warehouse-sync", "reconcile", pipeline.name, *pipeline.tags],
        doc_md="Compares the whole table by checksum bisection up to the pipeline's high watermark, "
               "re-extracts missing and changed rows, marks rows deleted at the source, and records "
               "the result in warehouse_sync.drift_history. Fails (and alerts) on refused repair. "
               "Beside it, health records the mode's health (CDC: the replication slot) and alerts over "
               "its thresholds, and clean_staging removes the staged files of windows older than "
               "staging_retention_days and records the staging size left.",
    )
    def reconcile_daily():
        @task(execution_timeout=pipeline.execution_timeout("reconcile_table"))
        def reconcile_table(run_id=None):
            from warehouse_sync import tasks
            from warehouse_sync.run import opened

            on_drift = partial(alert_drift, get_current_context(), alerts, str(pipeline.target))
            with tasks.fail_fast(), opened(pipeline, run_id) as run:
                return tasks.reconcile_table(run, on_drift=on_drift).to_dict()

        @task(execution_timeout=pipeline.execution_timeout("health"))
        def health(run_id=None):
            """The mode's health (CDC: the replication slot's retained WAL and lag), alerting over thresholds."""
            from warehouse_sync import tasks
            from warehouse_sync.run import opened

            with tasks.fail_fast(), opened(pipeline, run_id) as run:
                measured = tasks.health(run)
            alert_health(get_current_context(), alerts, str(pipeline.target), list(measured.alerts))
            return measured.to_dict()

        @task(execution_timeout=pipeline.execution_timeout("clean_staging"))
        def clean_staging(run_id=None):
            """Removes staged files of windows older than staging_retention_days; records the size left."""
            from warehouse_sync import tasks
            from warehouse_sync.db.connections import connection

            with tasks.fail_fast(), connection(pipeline.warehouse_conn_id,
                                               lock_timeout_seconds=pipeline.lock_timeout_seconds) as wh:
                return tasks.clean_staging(wh, pipeline, run_id)

        # side by side, not downstream: none can fail or skip another (a paused sync DAG's slot still alerts)
        reconcile_table()
        health()
        clean_staging()

    return reconcile_daily()


# Every valid pipeline gets its DAGs; a bad entry is left out here and raised by
# warehouse_sync_config_check.py as that file's import error, so that it cannot take the others down.
_config = read_config(config_path()).config
for _pipeline in _config.pipelines:
    globals()[_pipeline.dag_id] = build_dag(_pipeline, _config.alerts_for(_pipeline))
    globals()[f"reconcile_{_pipeline.name}"] = build_reconcile_dag(_pipeline, _config.alerts_for(_pipeline))
