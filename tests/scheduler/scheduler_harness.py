"""The scheduler layer's machinery: the components' environment, starting and stopping them by PID,
polling the metadata database, comparing source and warehouse, and explaining failures.

Kept apart from ``conftest.py`` (which only wires fixtures) so that the tests can import the
helpers by name. Nothing here touches the pytest process's ``os.environ``: every Airflow process
gets the environment built by :func:`component_environment`.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from base64 import urlsafe_b64encode
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from pathlib import Path
from typing import Any, Callable, Iterable

import psutil
import psycopg
import yaml
from psycopg import sql
from psycopg.rows import dict_row

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
DAG_ID = "sync_sched_orders"
RECONCILE_DAG_ID = "reconcile_sched_orders"
DATABASES = {"meta": "ws_sched_meta", "source": "ws_sched_source", "warehouse": "ws_sched_warehouse"}
WINDOW = timedelta(hours=2)
TERMINAL = ("success", "failed")
RUN_TIMEOUT = 240  # seconds a single run may take, from its trigger to success or failure

# The pipeline file this layer writes (settings named in the brief; snapshot_batch_size small too, so
# the initial snapshot is also mapped over several extract tasks).
PIPELINE_FILE = {
    "alerts": {"smtp": {"to": ["ops@example.com"], "conn_id": "smtp_default", "from": "ws@example.com"}},
    "pipelines": [{
        "name": "sched_orders", "source": "t_sched.orders", "primary_key": ["id"], "cursor": "updated_at",
        "target": "t_sched.orders", "settle_timeout_seconds": 0, "batch_size": 50, "snapshot_batch_size": 200,
        "page_size": 20,
    }],
}
ORDERS_DDL = """
CREATE SCHEMA t_sched;
CREATE TABLE t_sched.orders (
    id          bigint        PRIMARY KEY,
    status      text,
    amount      numeric(12,2),
    updated_at  timestamptz   NOT NULL
);
CREATE INDEX ON t_sched.orders (updated_at, id);
"""
# Count and an order-independent checksum of the rows before a cursor bound (the warehouse side
# counts live rows only).
CHECKSUM = ("SELECT count(*), coalesce(sum(hashtext(id::text || '|' || coalesce(status::text, '') || '|' || "
            "coalesce(amount::text, '') || '|' || updated_at::text)), 0) FROM t_sched.orders "
            "WHERE updated_at < %s {live}")


def floor_boundary(moment: datetime) -> datetime:
    """The two-hour schedule boundary (``0 */2 * * *`` UTC) at or before ``moment``."""
    moment = moment.astimezone(timezone.utc)
    return moment.replace(hour=moment.hour - moment.hour % 2, minute=0, second=0, microsecond=0)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tail(path: Path, lines: int = 40, width: int = 400) -> str:
    """The last ``lines`` lines of a file, each cut at ``width`` characters."""
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(line if len(line) <= width else line[:width] + " …" for line in text)


# --- SMTP --------------------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler that keeps every message (to, subject, body)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook  # noqa: N802
        message = message_from_bytes(envelope.content)
        parts = [p for p in message.walk() if not p.is_multipart()]
        body = "".join((p.get_payload(decode=True) or b"").decode(errors="replace") for p in parts)
        with self._lock:
            self._messages.append({"to": list(envelope.rcpt_tos), "subject": str(message["Subject"]),
                                   "body": body, "at": utcnow()})
        return "250 OK"

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()


# --- processes ---------------------------------------------------------------------------------

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # runs in the child between fork and exec: keep it minimal
    os.setsid()  # its own process group, so the whole tree can be signalled at once
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # and it dies with pytest, even on a hard kill


@dataclass
class Component:
    """One long-running Airflow process (api-server, dag-processor, scheduler, celery worker) in its own
    process group; ``env`` and ``cwd`` are its own additions to the stack's environment and folder."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    pgid: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    def start(self, env: dict[str, str], cwd: Path) -> None:
        log = self.log_path.open("ab")
        if self.cwd is not None:
            self.cwd.mkdir(parents=True, exist_ok=True)
        try:
            self.process = subprocess.Popen(self.argv, env={**env, **self.env}, cwd=self.cwd or cwd,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            preexec_fn=_child_setup)
        finally:
            log.close()  # the child holds its own descriptor
        self.pgid = self.process.pid  # setsid(): the group id is the child's pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> list[str]:
        """SIGTERM to the process group, SIGKILL to whatever is left after ``timeout``.

        Returns:
            Lines describing what had to be killed (empty when everything stopped on SIGTERM).
        """
        if self.process is None:
            return []
        notes: list[str] = []
        tree = _descendants(self.process.pid)  # before signalling: a child may leave the group
        _signal_group(self.pgid, signal.SIGTERM)
        for proc in tree:
            _signal_pid(proc, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            notes.append(f"{self.name} (pid {self.process.pid}) ignored SIGTERM for {timeout:.0f}s: SIGKILL")
            _signal_group(self.pgid, signal.SIGKILL)
            self.process.wait(timeout=10)
        _, alive = psutil.wait_procs(tree, timeout=5)
        if alive:
            notes.append(f"{self.name}: {len(alive)} descendant(s) still alive after the leader exited: SIGKILL "
                         + ", ".join(str(p.pid) for p in alive))
            _signal_group(self.pgid, signal.SIGKILL)
            for proc in alive:
                _signal_pid(proc, signal.SIGKILL)
            _, still = psutil.wait_procs(alive, timeout=5)
            notes.extend(f"{self.name}: pid {p.pid} survived SIGKILL" for p in still)
        return notes


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _signal_group(pgid: int | None, sig: int) -> None:
    if pgid is None:
        return
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pid(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass


# --- environment -------------------------------------------------------------------------------

# What the components inherit from the pytest process; everything Airflow-related is set explicitly.
INHERITED = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM", "SHELL")


def component_environment(*, home: Path, tmp: Path, socket_dir: str, uris: dict[str, str], api_port: int,
                          log_server_port: int, smtp_port: int, databases: dict[str, str] = DATABASES,
                          overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every Airflow process of this layer (and of the ``airflow`` CLI calls).

    LocalExecutor and local staging unless ``overrides`` (e.g. the Celery stack's executor, broker
    and ``s3://`` roots) replace them; ``databases`` names the metadata database."""
    env = {key: os.environ[key] for key in INHERITED if key in os.environ}
    base = f"http://127.0.0.1:{api_port}"
    env.update({
        "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "/usr/bin:/bin")]),
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO / "tools")]),
        "PYTHONUNBUFFERED": "1",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@/{databases['meta']}?host={socket_dir}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "5",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "5",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__FERNET_KEY": urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_server_port),
        "AIRFLOW_CONN_SOURCE_POSTGRES": uris["source"],
        "AIRFLOW_CONN_WAREHOUSE_POSTGRES": uris["warehouse"],
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": smtp_port,
            "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10}}),
        "WAREHOUSE_SYNC_CONFIG": str(tmp / "pipelines.yaml"),
        "WAREHOUSE_SYNC_STAGING_ROOT": f"file://{tmp / 'staging'}",
        "WAREHOUSE_SYNC_REPORTS_ROOT": f"file://{tmp / 'reports'}",
        "WAREHOUSE_SYNC_RETRY_DELAY_SECONDS": "1",
    })
    env.update(overrides or {})
    return env


# --- the Celery stack ----------------------------------------------------------------------------

CELERY_DATABASES = {"meta": "ws_celery_meta", "source": "ws_celery_source", "warehouse": "ws_celery_warehouse"}
CELERY_BUCKET = "ws-celery"
STORAGE_CONN_ID = "ws_staging_s3"
# Small batches so each window maps over three extracts; each run reads and reconciles only its own
# window (the windows land in any order); a lock on the target fails a load after 3 s instead of 30. The
# extracts run in a named pool, created by `airflow pools import` as the optional deployment step.
CELERY_PIPELINE = {"batch_size": 25, "initial_load": "window", "per_run_table_check": "none",
                   "lock_timeout_seconds": 3, "extract_pool": "extract_celery_source", "extract_pool_slots": 4}


ANALYST_DAG_ID = "analyst_orders_report"
# An analyst's DAG scheduled on the asset that sync_sched_orders' load updates (docs/deploy.md, "Downstream DAGs").
ANALYST_DAG = f'''
from airflow.sdk import Asset, dag, task


@dag(dag_id="{ANALYST_DAG_ID}", schedule=[Asset("warehouse-sync://warehouse_postgres/t_sched.orders")],
     catchup=False, tags=["analyst"])
def analyst_orders_report():
    @task
    def refresh(triggering_asset_events=None):
        return sorted(str(asset) for asset in (triggering_asset_events or {{}}))

    refresh()


analyst_orders_report()
'''


def dags_folder_with_analyst_dag(folder: Path) -> Path:
    """A DAGs folder with this repository's DAG file (a symlink) and :data:`ANALYST_DAG` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "warehouse_sync_dags.py").symlink_to(REPO / "dags" / "warehouse_sync_dags.py")
    (folder / "analyst_orders_report.py").write_text(ANALYST_DAG)
    return folder


@dataclass(frozen=True)
class CeleryRun:
    """The Celery stack's fixed facts: the schedule boundary its seed ends at, the bucket and the S3 endpoint."""

    boundary: datetime
    bucket: str
    endpoint_url: str


def celery_environment(broker_url: str, s3_url: str, s3_connection: str) -> dict[str, str]:
    """What the Celery stack changes in every component's environment: executor, broker, result
    backend (the metadata database), and object-storage staging and reports roots with their
    connection: the settings a Celery deployment changes (docs/deploy.md)."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "WAREHOUSE_SYNC_STAGING_ROOT": f"s3://{CELERY_BUCKET}/staging",
        "WAREHOUSE_SYNC_REPORTS_ROOT": f"s3://{CELERY_BUCKET}/reports",
        "WAREHOUSE_SYNC_STORAGE_CONN_ID": STORAGE_CONN_ID,
        f"AIRFLOW_CONN_{STORAGE_CONN_ID.upper()}": s3_connection,
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO / "tools"), str(Path(__file__).parent)]),
        "WS_TEST_S3_ENDPOINT": s3_url,
    }


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the Celery stack's workers: each worker's name from its own
    environment, so that two workers on one machine record different ``task_instance.hostname``."""
    return os.environ["WS_TEST_WORKER_HOSTNAME"]


def write_pipeline_file(path: Path, **settings: Any) -> None:
    """The layer's pipeline file; ``settings`` override the pipeline's (e.g. ``batch_size``)."""
    content = {**PIPELINE_FILE, "pipelines": [{**PIPELINE_FILE["pipelines"][0], **settings}]}
    path.write_text(yaml.safe_dump(content, sort_keys=False))


# --- the stack ---------------------------------------------------------------------------------


@dataclass
class AirflowStack:
    """The session's running Airflow: its environment, processes, databases and SMTP inbox."""

    tmp: Path
    env: dict[str, str]
    uris: dict[str, str]
    api_url: str
    inbox: Inbox
    components: list[Component] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra_logs: list[Path] = field(default_factory=list)

    # ---- reporting ----
    def note(self, line: str) -> None:
        """A line for the session's timing/behaviour summary (printed now, and again at the end)."""
        self.notes.append(line)
        print(f"[scheduler layer] {line}", flush=True)

    def component_logs(self, lines: int = 40) -> str:
        parts = []
        for component in self.components:
            state = "running" if component.alive() else f"EXITED rc={component.process.returncode}" \
                if component.process else "not started"
            parts.append(f"----- {component.name} ({state}) {component.log_path} -----\n"
                         f"{tail(component.log_path, lines)}")
        for path in self.extra_logs:
            parts.append(f"----- {path} -----\n{tail(path, lines)}")
        return "\n".join(parts)

    def explain(self, run_id: str | None = None, dag_id: str = DAG_ID, lines: int = 25) -> str:
        """Everything useful for a failure message: the run's tasks, failed tasks' logs, component logs."""
        parts = []
        if run_id:
            try:
                run = self.run(run_id, dag_id)
                parts.append(f"run {run_id}: {run}")
                for ti in self.task_instances(run_id, dag_id):
                    parts.append(f"  {ti['task_id']}[{ti['map_index']}] {ti['state']} try {ti['try_number']} "
                                 f"on {ti['hostname']}")
                parts.append(self.task_log_tails(run_id, dag_id))
            except Exception as exc:  # diagnostics must never hide the original failure
                parts.append(f"(could not read run {run_id}: {exc!r})")
        parts.append(self.component_logs(lines))
        return "\n".join(parts)

    def task_log_tails(self, run_id: str, dag_id: str = DAG_ID, lines: int = 25) -> str:
        """The end of the log of every task instance that failed or is up for retry, errors first."""
        failing = [ti for ti in self.task_instances(run_id, dag_id) if ti["state"] in ("failed", "up_for_retry")]
        parts = []
        for ti in failing:
            folder = self.logs_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={ti['task_id']}"
            for path in sorted(folder.rglob("attempt=*.log")):
                parts.append(f"----- task log {path.relative_to(self.logs_folder)} -----\n"
                             f"{render_task_log(path, lines)}")
        return "\n".join(parts) if parts else "(no failed task logs)"

    @property
    def logs_folder(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"]) / "logs"

    def check_alive(self) -> None:
        dead = [c for c in self.components if not c.alive()]
        if dead:
            raise AssertionError(f"Airflow component(s) exited: {', '.join(c.name for c in dead)}\n"
                                 + self.component_logs(80))

    # ---- the CLI ----
    def import_pools(self, pipeline_file: Path) -> None:
        """Creates (or updates) the pipelines' extract pools, as a deployment does: ``airflow pools import``."""
        printed = subprocess.run([str(VENV_BIN / "python"), "-m", "warehouse_sync.config.pools", str(pipeline_file)],
                                 env=self.env, cwd=self.tmp, text=True, capture_output=True, check=True, timeout=120)
        pools = self.tmp / "pools.json"
        pools.write_text(printed.stdout)
        self.airflow("pools", "import", str(pools))

    def airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """Runs ``airflow <args>`` with the components' environment; fails with its output and the logs."""
        started = time.monotonic()
        result = subprocess.run([str(VENV_BIN / "airflow"), *args], env=self.env, cwd=self.tmp, text=True,
                                capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        if result.returncode != 0:
            raise AssertionError(f"`airflow {' '.join(args)}` exited {result.returncode} after {seconds:.1f}s\n"
                                 f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}\n"
                                 + self.component_logs(20))
        self.note(f"`airflow {' '.join(args)}`: {seconds:.1f}s")
        return result

    # ---- the REST API (v2) ----
    def token(self) -> str:
        """A JWT from the SimpleAuthManager's all-admins flow (``GET /auth/token``)."""
        import urllib.request

        with urllib.request.urlopen(f"{self.api_url}/auth/token", timeout=30) as response:
            return json.load(response)["access_token"]

    def api_get(self, path: str) -> Any:
        import urllib.request

        request = urllib.request.Request(f"{self.api_url}{path}", headers={"Authorization": f"Bearer {self.token()}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def api_post(self, path: str, body: dict[str, Any]) -> Any:
        import urllib.request

        request = urllib.request.Request(f"{self.api_url}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {self.token()}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def plan_label(self, run_id: str, dag_id: str = DAG_ID) -> str | None:
        """What the UI shows for the run's plan task: its rendered map index (the synced window)."""
        ti = self.api_get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/plan")
        return ti.get("rendered_map_index")

    # ---- databases ----
    def connect(self, which: str) -> psycopg.Connection:
        """An autocommit UTC connection to ``meta``, ``source`` or ``warehouse``."""
        uri = self.uris[which].replace("postgresql+psycopg2://", "postgresql://")
        return psycopg.connect(uri, autocommit=True, row_factory=dict_row, options="-c TimeZone=UTC",
                               connect_timeout=10)

    def query(self, which: str, statement: str, params: Iterable[Any] | dict | None = None) -> list[dict[str, Any]]:
        with self.connect(which) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def run(self, run_id: str, dag_id: str = DAG_ID) -> dict[str, Any] | None:
        rows = self.query("meta", "SELECT run_id, state, run_type, logical_date, data_interval_start, "
                                  "data_interval_end, run_after, start_date, end_date, backfill_id, conf FROM dag_run "
                                  "WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
        return rows[0] if rows else None

    def runs(self, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        return self.query("meta", "SELECT run_id, state, run_type, logical_date, data_interval_start, "
                                  "data_interval_end, run_after, start_date, end_date, backfill_id FROM dag_run "
                                  "WHERE dag_id = %s ORDER BY id", (dag_id,))

    def task_instances(self, run_id: str, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        return self.query("meta", "SELECT task_id, map_index, state, try_number, hostname, pool, start_date, end_date "
                                  "FROM task_instance WHERE dag_id = %s AND run_id = %s "
                                  "ORDER BY start_date NULLS LAST, task_id, map_index", (dag_id, run_id))

    def is_paused(self, dag_id: str = DAG_ID) -> bool | None:
        rows = self.query("meta", "SELECT is_paused FROM dag WHERE dag_id = %s", (dag_id,))
        return rows[0]["is_paused"] if rows else None

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float, run_id: str | None = None,
                 interval: float = 1.0) -> Any:
        """Polls ``probe`` until it returns something truthy; fails after ``timeout`` with the logs."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            self.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n" + self.explain(run_id))
            time.sleep(interval)

    def wait_for_run(self, run_id: str, timeout: float = RUN_TIMEOUT, dag_id: str = DAG_ID) -> dict[str, Any]:
        """Waits until the run is ``success`` or ``failed``; returns its ``dag_run`` row."""
        def finished():
            run = self.run(run_id, dag_id)
            return run if run and run["state"] in TERMINAL else None

        return self.wait_for(f"run {run_id} of {dag_id} to finish", finished, timeout, run_id)

    def wait_until_idle(self, dag_id: str = DAG_ID, timeout: float = RUN_TIMEOUT) -> None:
        """Waits until the DAG has no queued or running run."""
        def idle():
            return not self.query("meta", "SELECT 1 FROM dag_run WHERE dag_id = %s AND state IN ('queued', 'running')",
                                  (dag_id,))

        self.wait_for(f"{dag_id} to have no active run", idle, timeout)

    def trigger(self, run_id: str, *args: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        """``airflow dags trigger <dag> -r <run_id> <args>``, then waits for the run to finish; returns its row."""
        self.airflow("dags", "trigger", DAG_ID, "-r", run_id, *args)
        started = time.monotonic()
        run = self.wait_for_run(run_id, timeout)
        self.note(f"run {run_id}: {run['state']} {time.monotonic() - started:.1f}s after the trigger command returned "
                  f"(run_type {run['run_type']}, logical_date {run['logical_date']}, run_after {run['run_after']})")
        return run

    def assert_success(self, run: dict[str, Any]) -> None:
        assert run["state"] == "success", f"run {run['run_id']} is {run['state']}\n" + self.explain(run["run_id"])

    def assert_in_sync(self, before: datetime, what: str, run_id: str | None = None) -> tuple[int, int]:
        """Source and warehouse have the same count and checksum below ``before``; returns the source's."""
        source, warehouse = self.checksums(before)
        assert source == warehouse, (
            f"{what}: source and warehouse differ for updated_at < {before.isoformat()}: source (count, checksum) "
            f"{source}, warehouse {warehouse}\nplan window: {self.plan_window(run_id) if run_id else None}\n"
            + self.explain(run_id))
        return source

    def plan_window(self, run_id: str) -> dict[str, Any] | None:
        """The window the run's plan task wrote to ``warehouse_sync.audit`` (``step = 'plan'``)."""
        rows = self.query("warehouse", "SELECT window_start, window_end, detail FROM warehouse_sync.audit "
                                       "WHERE step = 'plan' AND run_id = %s ORDER BY id DESC LIMIT 1", (run_id,))
        return rows[0] if rows else None

    def checksums(self, before: datetime) -> tuple[tuple[int, int], tuple[int, int]]:
        """(count, checksum) of the source and of the warehouse's live rows with ``updated_at < before``."""
        source = self.query("source", CHECKSUM.format(live=""), (before,))[0]
        warehouse_exists = self.query("warehouse", "SELECT to_regclass('t_sched.orders') IS NOT NULL AS e")[0]["e"]
        target = self.query("warehouse", CHECKSUM.format(live="AND _deleted_at IS NULL"), (before,))[0] \
            if warehouse_exists else {"count": 0, "coalesce": 0}
        return (source["count"], source["coalesce"]), (target["count"], target["coalesce"])

    def high_watermark(self) -> datetime | None:
        if not self.query("warehouse", "SELECT to_regclass('warehouse_sync.sync_state') IS NOT NULL AS e")[0]["e"]:
            return None
        rows = self.query("warehouse", "SELECT high_watermark FROM warehouse_sync.sync_state WHERE pipeline = %s",
                          ("sched_orders",))
        return rows[0]["high_watermark"] if rows else None

    def reset_warehouse(self) -> None:
        """An empty warehouse: no target table, no bookkeeping (so no sync state)."""
        self.query("warehouse", "DROP SCHEMA IF EXISTS t_sched CASCADE; DROP SCHEMA IF EXISTS warehouse_sync CASCADE")

    def stop(self) -> list[str]:
        """Stops every component (scheduler first, so it launches nothing more); returns what needed force."""
        notes: list[str] = []
        order = {"scheduler": 0, "celery-worker": 1, "dag-processor": 2, "api-server": 3}
        for component in sorted(self.components, key=lambda c: order.get(c.name.rstrip("-0123456789"), 9)):
            try:
                notes.extend(component.stop())
            except Exception as exc:  # keep stopping the others
                notes.append(f"{component.name}: stop raised {exc!r}")
        return notes


def render_task_log(path: Path, lines: int = 25) -> str:
    """An Airflow 3 task log (JSON lines) as text: level, event, and each error's type and message."""
    rendered = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            rendered.append(raw[:400])
            continue
        text = f"{entry.get('level', '?'):>7} {str(entry.get('event', ''))[:400]}"
        for error in entry.get("error_detail") or []:
            text += f"\n        {error.get('exc_type')}: {str(error.get('exc_value'))[:800]}"
        rendered.append(text)
    return "\n".join(rendered[-lines:])


def reset_databases(admin_uri: str, databases: dict[str, str] = DATABASES) -> None:
    """Drops and creates a stack's three databases (a fresh metadata database every session)."""
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        for name in databases.values():
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def seed_source(uri: str, now: datetime, rows: int = 600, span: timedelta = timedelta(hours=20)) -> None:
    """``t_sched.orders`` with ``rows`` rows whose ``updated_at`` is spread evenly over ``span`` before ``now``.

    20 hours (not 10) so that the backfill test's four windows, older than the windows the other
    tests run, have rows too: about 60 rows per two-hour window, i.e. 2 extract batches of <= 50.
    """
    step = span / rows
    data = [(i, ("new", "paid", "shipped")[i % 3], f"{(i * 37) % 10000 / 100:.2f}", now - span + i * step)
            for i in range(1, rows + 1)]
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(ORDERS_DDL)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO t_sched.orders VALUES (%s, %s, %s, %s)", data)
