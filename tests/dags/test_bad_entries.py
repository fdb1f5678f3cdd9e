"""One bad pipeline entry does not break the others, and a pipeline's own schedule is its DAG's timetable.

The bad entries are an import error of ``dags/warehouse_sync_config_check.py``, never of
``warehouse_sync_dags.py``: Airflow 3 marks every DAG of a file with an import error stale (no
longer scheduled or triggerable), even those that loaded. The last test goes the real way a DAG
processor does (DagBag, then ``sync_bag_to_db`` into a migrated metadata database) and reads the
result back with ``airflow dags list-import-errors``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from test_dag_integrity import DAGS, dag_file_env


def parse(config: Path) -> tuple[list[str], dict[str, str]]:
    """The DAG ids and the import errors (file name: last line) of the DAGs folder under ``config``."""
    code = (
        "import json\n"
        "from pathlib import Path\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r})\n"
        "print('RESULT', json.dumps([sorted(bag.dag_ids),\n"
        "    {Path(f).name: e.strip().splitlines()[-1] for f, e in bag.import_errors.items()}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=dag_file_env(WAREHOUSE_SYNC_CONFIG=str(config)),
                            capture_output=True, text=True, timeout=300)
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, result.stderr[-2000:]
    dag_ids, errors = json.loads(line[len("RESULT "):])
    return dag_ids, errors


def entry(name: str, **fields) -> dict:
    return {"name": name, "source": f"app.{name}", "primary_key": ["id"], "cursor": "updated_at",
            "target": f"dw.{name}", **fields}


def pipelines_file(tmp_path: Path, *entries: dict) -> Path:
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump({"pipelines": list(entries)}))
    return path


def test_a_bad_entry_is_the_config_check_files_import_error_and_the_valid_pipelines_dags_load(tmp_path):
    path = pipelines_file(tmp_path, entry("good"), entry("bad", batch_size=-5), entry("other"))
    dag_ids, errors = parse(path)
    assert dag_ids == ["reconcile_good", "reconcile_other", "sync_good", "sync_other"]
    assert list(errors) == ["warehouse_sync_config_check.py"]
    message = errors["warehouse_sync_config_check.py"]
    assert message.startswith(f"warehouse_sync.config.pipeline.ConfigError: {path}: pipeline 'bad', field 'batch_size'")
    assert "'good'" not in message and "'other'" not in message


def test_a_valid_file_leaves_the_config_check_file_without_error(tmp_path):
    assert parse(pipelines_file(tmp_path, entry("good"))) == (["reconcile_good", "sync_good"], {})


def test_a_problem_of_the_whole_file_is_one_import_error_of_the_dag_file(tmp_path):
    path = tmp_path / "pipelines.yaml"
    path.write_text("pipelines: [ {name: good")  # not YAML
    dag_ids, errors = parse(path)
    assert dag_ids == [] and list(errors) == ["warehouse_sync_dags.py"]


def test_the_sync_dag_runs_on_the_pipelines_own_schedule_and_the_reconcile_stays_daily(tmp_path):
    path = pipelines_file(tmp_path, entry("hourly", schedule="@hourly"),
                          entry("weekdays", schedule="*/20 6-18 * * 1-5"))
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r})\n"
        "for dag_id in sorted(bag.dag_ids):\n"
        "    t = bag.dags[dag_id].timetable\n"
        "    print('TIMETABLE', dag_id, type(t).__name__, repr(t.expression), t.timezone)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=dag_file_env(WAREHOUSE_SYNC_CONFIG=str(path)),
                            capture_output=True, text=True, timeout=300)
    lines = sorted(line for line in result.stdout.splitlines() if line.startswith("TIMETABLE"))
    assert lines == [
        "TIMETABLE reconcile_hourly CronDataIntervalTimetable '0 3 * * *' UTC",
        "TIMETABLE reconcile_weekdays CronDataIntervalTimetable '0 3 * * *' UTC",
        "TIMETABLE sync_hourly CronDataIntervalTimetable '0 * * * *' UTC",
        "TIMETABLE sync_weekdays CronDataIntervalTimetable '*/20 6-18 * * 1-5' UTC",
    ], result.stderr[-2000:]


_SYNC_TO_DB = """
from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
from airflow.models.dag import DagModel
from airflow.models.dagbundle import DagBundleModel
from airflow.utils.session import create_session
from sqlalchemy import select

with create_session() as session:
    session.merge(DagBundleModel(name="dags-folder"))
bag = DagBag(dag_folder={folder!r}, bundle_path={folder!r}, bundle_name="dags-folder")
sync_bag_to_db(bag, "dags-folder", None)
with create_session() as session:
    for dag in session.scalars(select(DagModel)):
        print("DAG", dag.dag_id, "stale" if dag.is_stale else "active",
              "import_errors" if dag.has_import_errors else "ok")
"""


def test_in_the_metadata_database_the_valid_pipelines_dags_stay_active_and_the_bad_entry_is_listed(tmp_path):
    path = pipelines_file(tmp_path, entry("good"), entry("bad", schedule="every hour"))
    env = dag_file_env(WAREHOUSE_SYNC_CONFIG=str(path), AIRFLOW_HOME=str(tmp_path / "airflow"),
                       AIRFLOW__CORE__LOAD_EXAMPLES="False")
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    synced = subprocess.run([sys.executable, "-c", _SYNC_TO_DB.format(folder=str(DAGS))], env=env,
                            capture_output=True, text=True, timeout=300)
    dags = sorted(line for line in synced.stdout.splitlines() if line.startswith("DAG "))
    assert dags == ["DAG reconcile_good active ok", "DAG sync_good active ok"], synced.stderr[-2000:]

    listed = subprocess.run([airflow, "dags", "list-import-errors", "--output", "json"], env=env,
                            capture_output=True, text=True, timeout=300)
    errors = json.loads(listed.stdout.strip().splitlines()[-1])  # after any log lines
    assert [e["filepath"] for e in errors] == ["warehouse_sync_config_check.py"], listed.stdout
    assert "pipeline 'bad', field 'schedule'" in errors[0]["error"] and str(path) in errors[0]["error"]
