"""The DAG file gives every task the execution_timeout its pipeline configures (no run, no database)."""

from __future__ import annotations

from datetime import timedelta

from helpers import dag_module

from warehouse_sync.config import Alerts, Pipeline


def test_every_task_gets_its_pipeline_s_execution_timeout_and_a_task_without_one_the_longest(monkeypatch):
    module = dag_module(monkeypatch)
    pipeline = Pipeline(name="items", source="t_src.items", target="t_dst.items", primary_key=["id"],
                        cursor="updated_at", task_timeout_minutes={"extract": 45, "reconcile_table": 240})
    known = pipeline.task_timeout_minutes.minutes()
    dags = [module.build_dag(pipeline, Alerts()), module.build_reconcile_dag(pipeline, Alerts())]
    seen = set()
    for dag in dags:
        for task in dag.tasks:
            expected = pipeline.execution_timeout(task.task_id) if task.task_id in known else timedelta(minutes=240)
            assert task.execution_timeout == expected, f"{dag.dag_id}.{task.task_id}"
            seen.add(task.task_id)
    assert seen >= set(known)  # every configured task exists in a DAG
    assert dags[0].get_task("extract").execution_timeout == timedelta(minutes=45)


def test_the_shipped_dags_bound_every_task(monkeypatch):
    from airflow.sdk import DAG

    module = dag_module(monkeypatch)
    shipped = [d for d in vars(module).values() if isinstance(d, DAG)]
    assert shipped
    for dag in shipped:
        for task in dag.tasks:
            assert task.execution_timeout is not None and task.execution_timeout > timedelta(0), \
                f"{dag.dag_id}.{task.task_id}"
