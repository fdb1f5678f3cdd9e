"""DAG integrity: the DAG file imports cleanly (without touching a database), and every DAG has the
two-hourly data-interval timetable, retries with backoff, tags, and a dynamically mapped extract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


def dag_file_env(**overrides: str) -> dict[str, str]:
    """The environment the DAG file is parsed in: this repository's DAGs folder, so that the pipeline
    file is its default (``include/pipelines.yaml`` beside ``dags/``) unless ``overrides`` name one."""
    env = {k: v for k, v in os.environ.items() if k != "WAREHOUSE_SYNC_CONFIG"}
    return {**env, "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS), **overrides}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("WAREHOUSE_SYNC_CONFIG", raising=False)
        patch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))
        return DagBag(dag_folder=str(DAGS))


def test_dag_file_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"sync_tpch_orders", "sync_tpch_lineitem",
                                   "reconcile_tpch_orders", "reconcile_tpch_lineitem"}


def test_every_dag_runs_every_two_hours_on_data_intervals(dagbag):
    from airflow.sdk import CronDataIntervalTimetable

    for dag in dagbag.dags.values():
        assert isinstance(dag.timetable, CronDataIntervalTimetable), dag.dag_id
        expected = "0 */2 * * *" if dag.dag_id.startswith("sync_") else "0 3 * * *"
        assert dag.timetable.expression == expected, dag.dag_id
        assert str(dag.timetable.timezone) == "UTC"


def test_every_task_retries_at_least_twice_with_exponential_backoff(dagbag):
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag.dag_id}.{task.task_id}"
            assert task.retry_exponential_backoff, f"{dag.dag_id}.{task.task_id}"


def test_every_dag_is_tagged_and_documented(dagbag):
    for dag in dagbag.dags.values():
        assert "warehouse-sync" in dag.tags and dag.doc_md


def test_extract_is_dynamically_mapped_between_plan_and_load(dagbag):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    for dag in (d for d in dagbag.dags.values() if d.dag_id.startswith("sync_")):
        extract = dag.get_task("extract")
        assert isinstance(extract, MappedOperator)
        assert extract.upstream_task_ids == {"plan"}
        assert dag.get_task("load").upstream_task_ids == {"plan", "extract"}
        assert "load" in dag.get_task("reconcile").upstream_task_ids


def test_validate_runs_after_load_beside_reconcile_and_is_not_retried_for_bad_data(dagbag):
    for dag in (d for d in dagbag.dags.values() if d.dag_id.startswith("sync_")):
        validate = dag.get_task("validate")
        assert "load" in validate.upstream_task_ids and not validate.downstream_task_ids
        assert validate.retries >= 1  # infrastructure errors retry; a failed `fail` check raises AirflowFailException


def test_the_data_quality_plugin_is_the_only_module_airflow_loads_from_plugins():
    from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory

    plugins, errors = _load_plugins_from_plugin_directory(str(DAGS.parent / "plugins"))
    assert errors == {} and [p.name for p in plugins] == ["warehouse_sync_data_quality"]
    (plugin,) = plugins
    assert plugin.fastapi_apps[0]["url_prefix"] == "/data-quality"
    assert plugin.external_views[0]["name"] == "Data quality" and plugin.external_views[0]["destination"] == "nav"


def test_full_snapshot_is_a_boolean_run_param_defaulting_to_false(dagbag):
    for dag in (d for d in dagbag.dags.values() if d.dag_id.startswith("sync_")):
        assert dag.params["full_snapshot"] is False


def _parse_in_subprocess(env: dict[str, str], folder: Path = DAGS) -> subprocess.CompletedProcess:
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(folder)!r})\n"
        "print('DAGS', sorted(bag.dag_ids))\n"
        "print('ERRORS', list(bag.import_errors.values()))\n"
    )
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_parsing_makes_no_database_call(tmp_path):
    env = dag_file_env(AIRFLOW_CONN_SOURCE_POSTGRES="postgresql://nobody@127.0.0.1:1/none",
                       AIRFLOW_CONN_WAREHOUSE_POSTGRES="postgresql://nobody@127.0.0.1:1/none")
    result = _parse_in_subprocess(env)
    assert "'sync_tpch_lineitem', 'sync_tpch_orders'" in result.stdout, result.stderr[-2000:]
    assert "ERRORS []" in result.stdout


def test_invalid_pipeline_entry_is_an_import_error_naming_file_table_and_field(tmp_path):
    bad = tmp_path / "pipelines.yaml"
    bad.write_text(yaml.safe_dump({"pipelines": [
        {"name": "orders", "source": "tpch.orders", "primary_key": ["o_orderkey"], "cursor": "updated_at",
         "target": "dw.orders", "batch_size": -5}]}))
    result = _parse_in_subprocess(dag_file_env(WAREHOUSE_SYNC_CONFIG=str(bad)))
    assert "DAGS []" in result.stdout, result.stderr[-2000:]
    assert str(bad) in result.stdout and "'orders'" in result.stdout and "batch_size" in result.stdout


def test_without_warehouse_sync_config_the_dag_file_reads_include_beside_its_dags_folder(tmp_path):
    project = tmp_path / "project"
    (project / "dags").mkdir(parents=True)
    (project / "include").mkdir()
    shutil.copy(DAGS / "warehouse_sync_dags.py", project / "dags")
    (project / "include" / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": [
        {"name": "solo", "source": "app.solo", "primary_key": ["id"], "cursor": "updated_at", "target": "dw.solo"}]}))
    result = _parse_in_subprocess(dag_file_env(AIRFLOW__CORE__DAGS_FOLDER=str(project / "dags")), project / "dags")
    assert "DAGS ['reconcile_solo', 'sync_solo']" in result.stdout, result.stderr[-2000:]
    assert "ERRORS []" in result.stdout


def test_every_task_alerts_when_it_fails_after_its_retries(dagbag):
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert task.on_failure_callback, f"{dag.dag_id}.{task.task_id}"


def test_every_table_has_a_daily_whole_table_reconcile_beside_its_health_and_staging_cleanup(dagbag):
    for dag_id in ("reconcile_tpch_orders", "reconcile_tpch_lineitem"):
        tasks = dagbag.dags[dag_id].tasks
        assert [t.task_id for t in tasks] == ["reconcile_table", "health", "clean_staging"]
        assert all(not t.upstream_task_ids for t in tasks)  # side by side: none can fail or skip another
