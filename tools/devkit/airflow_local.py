"""Running the real DAGs from Python: the local Airflow home, and one ``dag.test()`` per window.

Used by ``make demo``, ``make airflow`` and the integration tests, so all of them run the same
DAG code the scheduler runs (``dag.test()`` is what ``airflow dags test`` calls).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from devkit.paths import DAGS, PLUGINS, REPO, TOOLS

log = logging.getLogger(__name__)
WINDOW = timedelta(hours=2)


def airflow_environment(home: Path | None = None) -> dict[str, str]:
    """Sets (in ``os.environ``) and returns the variables of a local Airflow home for this repo.

    SQLite metadata under ``.airflow/`` (or ``home``), DAGs from ``dags/``, plugins from
    ``plugins/``, no example DAGs. Variables already set by the user win.
    """
    home = home or Path(os.environ.get("AIRFLOW_HOME", REPO / ".airflow"))
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    # Where the demo keeps its files (a deployment sets these; see warehouse_sync.storage).
    os.environ.setdefault("WAREHOUSE_SYNC_STAGING_ROOT", f"file://{REPO / '.staging'}")
    os.environ.setdefault("WAREHOUSE_SYNC_REPORTS_ROOT", f"file://{REPO / '.reports'}")
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    for folder in (str(PLUGINS), str(TOOLS)):
        if folder not in paths:
            paths.insert(0, folder)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return {key: os.environ[key]
            for key in (*defaults, "PYTHONPATH", "WAREHOUSE_SYNC_STAGING_ROOT", "WAREHOUSE_SYNC_REPORTS_ROOT")}


def migrate_metadata_db() -> None:
    """``airflow db migrate`` (idempotent) in a subprocess with this environment.

    Raises:
        subprocess.CalledProcessError: The migration failed (its output is in the exception).
    """
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, text=True)


def load_dags(dag_file: Path | None = None) -> dict[str, Any]:
    """Imports the DAG file as the scheduler would and returns its DAGs by id."""
    from airflow.sdk import DAG

    dag_file = dag_file or DAGS / "warehouse_sync_dags.py"
    spec = importlib.util.spec_from_file_location(f"warehouse_sync_dags_{id(dag_file)}", dag_file)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return {obj.dag_id: obj for obj in vars(module).values() if isinstance(obj, DAG)}


def floor_window(moment: datetime) -> datetime:
    """The two-hour schedule boundary at or before ``moment`` (UTC)."""
    moment = moment.astimezone(timezone.utc)
    return moment.replace(hour=moment.hour - moment.hour % 2, minute=0, second=0, microsecond=0)


def window_with_time_left(margin: timedelta = timedelta(minutes=10)) -> datetime:
    """The start of the current two-hour window (UTC), with at least ``margin`` of it still to come.

    A test or demo that seeds rows before this start, writes more rows now and then syncs the window
    ``[start, start + 2 h)`` needs its writes to land inside that window. Taken at import time, or
    within ``margin`` of the next boundary, the writes could fall past its end; so within ``margin``
    of the boundary this sleeps past it first (at most ``margin``).
    """
    now = datetime.now(timezone.utc)
    left = floor_window(now) + WINDOW - now
    if left < margin:
        log.warning("%.0f s to the next two-hour boundary: waiting past it", left.total_seconds())
        time.sleep(left.total_seconds() + 1)
    return floor_window(datetime.now(timezone.utc))


def run_window(dag: Any, window_end: datetime, conf: dict[str, Any] | None = None) -> Any:
    """Runs one DAG run of the window ``[window_end - 2 h, window_end)``; returns the finished ``DagRun``.

    ``dag.test()`` makes a manual run with a logical date; Airflow gives a manual run with logical date
    ``L`` the schedule's interval that ends at ``L``, and the run syncs that data interval
    (docs/operating.md), so ``L`` is the window's end. Its trigger time (``run_after``) is now, or the
    window end when that is later: a window still open is then run early, as the scheduler would run it
    when it closes (the demo's last window).

    ``full_snapshot`` is always passed explicitly: in one process, ``dag.test()`` keeps a run's conf
    in the DAG object's params for the next run.
    """
    run_after = max(window_end, datetime.now(timezone.utc))
    return dag.test(logical_date=window_end, run_after=run_after, run_conf={"full_snapshot": False, **(conf or {})})


def task_states(dag_run: Any) -> dict[str, str]:
    """``{task_id[map_index]: state}`` of a finished run (for messages and tests)."""
    states = {}
    for ti in dag_run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        states[key] = str(ti.state)
    return states
