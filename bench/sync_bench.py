"""``make bench``: our sync against the physical limit and against dlt, same data, same server, one run.

For each TPC-H scale factor of ``$BENCH_SCALES`` (default ``"1 3"``), in ``bench_source``/``bench_warehouse``:

1. **limit** of a snapshot: ``COPY (SELECT …) TO STDOUT (FORMAT binary)`` piped into ``COPY … FROM
   STDIN (FORMAT binary)`` into an empty copy of each table with its primary key;
2. **ours**: the initial snapshot of each table through the real DAG (``dag.test()``);
3. **dlt** (its own virtualenv, ``bench/peers/dlt.txt``): ``sql_table`` with an incremental cursor on
   ``updated_at`` and ``write_disposition="merge"``; backends ``pyarrow`` and ``connectorx`` are both
   tried once on orders, the faster one is used throughout (``$BENCH_DLT_BACKEND`` names one instead);
4. the **same change at every scale factor** (:data:`WORKLOAD`: orders inserted and deleted with
   their lineitems, orders and their lineitems updated), then one incremental window each for the
   limit (the window's rows through the cursor index into a temporary table, merged), ours and dlt.

Snapshot figures at the first scale factor are medians of ``$BENCH_REPEATS`` runs (default 3), at
the others one run (they exist for the incremental run on a bigger table). dlt's snapshot runs
``$BENCH_PEER_REPEATS`` times (default 1: it is several times slower than ours), and not at all for
a table of more than ``$BENCH_PEER_MAX_ROWS`` rows (default 10 000 000: lineitem at SF 3 would take
dlt about 10 minutes here, for an incremental figure that does not depend on the table's size).
"ours" is the task time of
plan + extract + load for a snapshot and of all tasks for an incremental window (reconcile and
validate apart too, as is Airflow's own time: wall time of the run minus the time inside tasks).
Peak RSS is that of one extract task run in its own process (ours) and of the dlt process. Before
the snapshots the source is vacuumed, and the targets before the incremental run (steady state:
autovacuum has visited long-lived tables; the workload's own changes are not vacuumed). Results:
``bench/results/sync.md``, ``sync.png``, ``sync_scale.png`` and ``latest.json`` (:mod:`sync_report`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from psycopg import sql

import common
import sync_report
from devkit import airflow_local as runner
from devkit import tpch
from devkit.embedded import ENV_VARS
from devkit.paths import CONFIG
from devkit.paths import REPO as REPO_ROOT
from warehouse_sync.bookkeeping.migrate import ensure_tables
from warehouse_sync.config import load_config
from warehouse_sync.db.catalog import column_definitions, describe_source
from warehouse_sync.db.connections import SOURCE_CONN_ID
from warehouse_sync.db.statements import idents, table_ident
from warehouse_sync.model import TableRef

# The same change at every scale factor: orders inserted and deleted (with their lineitems), orders updated.
WORKLOAD = {"orders": 1500, "updated_orders": 15000}
TABLES = {
    "tpch.orders": ("tpch_orders", ("o_orderkey",)),
    "tpch.lineitem": ("tpch_lineitem", ("l_orderkey", "l_linenumber")),
}
LIMIT_SCHEMA = "bench_limit"
STAGING = REPO_ROOT / ".bench" / "staging"


def measure_limit(src: Any, wh: Any, table: TableRef) -> float:
    """One binary COPY pipe into an empty copy of ``table`` (with its primary key); wall seconds."""
    columns = describe_source(src, table, TABLES[str(table)][1], "updated_at")
    copy_of = TableRef(LIMIT_SCHEMA, table.name)
    wh.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(LIMIT_SCHEMA)))
    wh.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table_ident(copy_of)))
    wh.execute(sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(
        table_ident(copy_of), column_definitions(columns), idents(TABLES[str(table)][1])))
    wh.commit()
    _, seconds = common.fill_by_copy(src, wh, table, copy_of, [c.name for c in columns])
    return seconds


def reset_ours(wh: Any, pipeline: Any) -> None:
    """An empty warehouse for one pipeline: no target, no bookkeeping rows, no staged files."""
    ensure_tables(wh)
    wh.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table_ident(pipeline.target)))
    for table in ("audit", "sync_state", "drift_history", "dq_results"):
        wh.execute(sql.SQL("DELETE FROM {} WHERE pipeline = %s").format(sql.Identifier("warehouse_sync", table)),
                   [pipeline.name])
    wh.commit()
    shutil.rmtree(STAGING / pipeline.name, ignore_errors=True)


def run_ours(dag: Any, window_end: datetime, snapshot: bool) -> dict[str, float]:
    """One DAG run through ``dag.test()``: task seconds by group and Airflow's own time."""
    started = datetime.now(timezone.utc)
    dag_run = runner.run_window(dag, window_end, {"full_snapshot": snapshot})
    wall = (datetime.now(timezone.utc) - started).total_seconds()
    states = runner.task_states(dag_run)
    if set(states.values()) != {"success"}:
        raise RuntimeError(f"{dag.dag_id} run failed: {states}")
    durations: dict[str, float] = {}
    for ti in dag_run.get_task_instances():
        durations[ti.task_id] = durations.get(ti.task_id, 0.0) + float(ti.duration or 0.0)
    tasks = sum(durations.values())
    return {"move_s": durations.get("plan", 0) + durations.get("extract", 0) + durations.get("load", 0),
            "plan_s": durations.get("plan", 0), "extract_s": durations.get("extract", 0),
            "load_s": durations.get("load", 0),
            "reconcile_s": durations.get("reconcile", 0), "validate_s": durations.get("validate", 0),
            "tasks_s": tasks, "airflow_s": max(wall - tasks, 0.0), "wall_s": wall}


def extract_rss(pipeline_name: str, window_end: datetime, env: dict[str, str]) -> float:
    """Peak RSS (MiB) of one snapshot extract task (the first batch) run in its own process.

    Read from ``VmHWM`` in ``/proc/self/status`` (the high-water mark of this process's own memory;
    ``ru_maxrss`` would also count the benchmark process it was forked from)."""
    code = (
        "from datetime import datetime\n"
        "from pathlib import Path\n"
        "from warehouse_sync import tasks\n"
        "from warehouse_sync.config import load_config\n"
        "from warehouse_sync.db.connections import source_and_warehouse\n"
        "from warehouse_sync.model import RunStart\n"
        "from warehouse_sync.run import Run\n"
        f"p = load_config({str(CONFIG)!r}).pipeline({pipeline_name!r})\n"
        f"end = datetime.fromisoformat({window_end.isoformat()!r})\n"
        "with source_and_warehouse() as (src, wh):\n"
        "    run = Run(p, src, wh, 'rss-probe')\n"
        "    planned = tasks.plan(run, RunStart.scheduled(end, end, True))\n"
        f"    tasks.extract(run, planned, planned.batches[0], root=Path({str(STAGING / 'rss')!r}))\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(int(hwm.split()[1]) / 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO_ROOT)
    if done.returncode:
        raise RuntimeError(f"RSS probe failed: {done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def run_dlt(bin_dir: Path, table: TableRef, backend: str, pipelines_dir: Path, src_uri: str, wh_uri: str) -> dict:
    """One dlt run (snapshot on a fresh pipelines dir, incremental on a used one)."""
    from warehouse_sync.db.connections import sqlalchemy_url

    source_url = sqlalchemy_url(src_uri).replace("postgresql+psycopg", "postgresql+psycopg2")
    dest = sqlalchemy_url(wh_uri).replace("postgresql+psycopg://", "postgresql://")
    command = [str(bin_dir / "python"), str(common.BENCH_DIR / "peers" / "dlt_run.py"), "--source-url", source_url,
               "--dest-url", dest, "--table", table.name, "--primary-key", ",".join(TABLES[str(table)][1]),
               "--backend", backend, "--pipelines-dir", str(pipelines_dir), "--dataset", f"bench_dlt_{table.name}"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=pipelines_dir.parent)
    if done.returncode:
        raise RuntimeError(f"dlt {backend} {table} failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    scales = common.scales()
    repeats = common.repeats()
    embedded = not all(os.environ.get(var) for var in ENV_VARS.values())
    src_uri, wh_uri = common.bench_uris()
    os.environ["WAREHOUSE_SYNC_STAGING_ROOT"] = f"file://{STAGING}"
    os.environ.pop("WAREHOUSE_SYNC_CONFIG", None)
    src, wh = common.connect_both()
    config = load_config(CONFIG)
    runner.airflow_environment(Path(os.environ.get("AIRFLOW_HOME", REPO_ROOT / ".airflow")))
    runner.migrate_metadata_db()
    dags = runner.load_dags()
    bin_dir = common.peer_venv("dlt")
    backend = None
    results: dict[tuple[str, str, float], dict[str, Any]] = {}
    small_rss = None
    for index, scale in enumerate(scales):
        # The first scale factor gets medians of $BENCH_REPEATS snapshots; the others one snapshot each
        # (they are there for the incremental run that follows, on a bigger table).
        backend = bench_scale(src, wh, config, dags, scale, repeats if index == 0 else 1, bin_dir, backend, src_uri,
                              wh_uri, results)
        if index == 0 and len(scales) == 1 and scale > 0.1 and embedded:  # several scales: RSS per scale instead
            small_rss = _small_scale_rss(runner.floor_window(datetime.now(timezone.utc)))
    sync_report.write_results(results, scales, backend, small_rss, repeats, WORKLOAD)
    return 0


def bench_scale(src: Any, wh: Any, config: Any, dags: dict, scale: float, repeats: int, bin_dir: Path,
                backend: str | None, src_uri: str, wh_uri: str, results: dict) -> str:
    """Snapshot (limit, ours, dlt) and then one incremental window after the fixed workload, at ``scale``.

    Fills ``results[(table, step, scale)]``; returns dlt's backend (picked here when ``None``).
    """
    anchor = runner.floor_window(datetime.now(timezone.utc))
    print(f"[bench] TPC-H SF {scale:g}: generating and seeding …", flush=True)
    data, counts = common.seed_source(src, scale, anchor)
    for table in (tpch.ORDERS, tpch.LINEITEM):  # long-lived tables: autovacuum has set their visibility maps
        common.vacuum(src, table)
    for name in TABLES:
        table = TableRef(*name.split("."))
        limit = [measure_limit(src, wh, table) for _ in range(repeats)]
        results[(name, "snapshot", scale)] = {"rows": counts[table.name], "changed_rows": counts[table.name],
                                              "limit_s": common.median(limit)}
        print(f"[bench] SF {scale:g} limit {name}: {', '.join(f'{x:.2f}' for x in limit)} s", flush=True)
    wh.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(LIMIT_SCHEMA)))
    wh.commit()

    warm_up = config.pipeline("tpch_orders")  # the first run in a process pays for imports: not measured
    reset_ours(wh, warm_up)
    run_ours(dags[warm_up.dag_id], anchor, snapshot=True)
    for name, (pipeline_name, _) in TABLES.items():
        pipeline = config.pipeline(pipeline_name)
        runs = []
        for _ in range(repeats):
            reset_ours(wh, pipeline)
            runs.append(run_ours(dags[pipeline.dag_id], anchor, snapshot=True))
            print(f"[bench] SF {scale:g} ours snapshot {name}: {runs[-1]['move_s']:.2f} s moving, "
                  f"{runs[-1]['airflow_s']:.2f} s Airflow", flush=True)
        record = results[(name, "snapshot", scale)]
        for key in runs[0]:
            record[f"ours_{key}"] = common.median(r[key] for r in runs)
        record["ours_s"] = record["ours_move_s"]
        record["peak_rss_mib"] = extract_rss(pipeline_name, anchor, dict(os.environ))

    dlt_root = REPO_ROOT / ".bench" / "dlt"
    backend = backend or os.environ.get("BENCH_DLT_BACKEND") or _pick_dlt_backend(bin_dir, wh, src_uri, wh_uri)
    skip_dlt = {name for name in TABLES if counts[name.split(".")[1]] > common.peer_max_rows()}
    for name in sorted(set(TABLES) - skip_dlt):
        table = TableRef(*name.split("."))
        runs = []
        for _ in range(common.peer_repeats(repeats)):
            _reset_dlt(wh, dlt_root / f"run-{table.name}", table)
            runs.append(_try_dlt(bin_dir, table, backend, dlt_root / f"run-{table.name}", src_uri, wh_uri))
            print(f"[bench] SF {scale:g} dlt {backend} snapshot {name}: {runs[-1]['seconds']} s", flush=True)
        results[(name, "snapshot", scale)].update(_dlt_figures(runs))

    workload = tpch.apply_workload(src, data, refresh_set=1, deletes=True, **WORKLOAD)
    print(f"[bench] SF {scale:g} workload: {workload}", flush=True)
    # Steady state: autovacuum has visited the targets since their snapshot (it sets the visibility
    # map the key check's index-only scans rely on); the workload's changes are not vacuumed.
    for pipeline_name, _ in TABLES.values():
        common.vacuum(wh, config.pipeline(pipeline_name).target)
    window_end = runner.floor_window(datetime.now(timezone.utc)) + runner.WINDOW
    for name, (pipeline_name, _) in TABLES.items():
        pipeline = config.pipeline(pipeline_name)
        table = TableRef(*name.split("."))
        limit_s = measure_incremental_limit(src, wh, pipeline, window_end)
        ours = run_ours(dags[pipeline.dag_id], window_end, snapshot=False)
        dlt_run = ({"seconds": None, "peak_rss_mib": None} if name in skip_dlt else
                   _try_dlt(bin_dir, table, backend, dlt_root / f"run-{table.name}", src_uri, wh_uri))
        changed = sum(getattr(workload, kind)[table.name] for kind in ("inserted", "updated", "deleted"))
        results[(name, "incremental", scale)] = {
            "rows": counts[table.name], "changed_rows": changed, "window_rows": ours_rows(wh, pipeline.name),
            "limit_s": limit_s, "ours_s": ours["tasks_s"], **{f"ours_{k}": v for k, v in ours.items()},
            **_dlt_figures([dlt_run]), "peak_rss_mib": results[(name, "snapshot", scale)]["peak_rss_mib"],
            **reconcile_steps(wh, pipeline.name),
        }
        print(f"[bench] SF {scale:g} incremental {name}: ours {ours['tasks_s']:.2f} s of tasks "
              f"({ours['reconcile_s']:.2f} s reconcile), limit {limit_s:.2f} s, dlt {dlt_run['seconds']} s", flush=True)
    return backend


def measure_incremental_limit(src: Any, wh: Any, pipeline: Any, window_end: datetime) -> float:
    """The floor of an incremental run: the window's rows read through the source's cursor index,
    binary-COPYed into a temporary table and merged into the target (rolled back); wall seconds."""
    columns = [c.name for c in describe_source(src, pipeline.source, pipeline.primary_key, pipeline.cursor)]
    names = idents(columns)
    window = {"start": window_end - runner.WINDOW, "end": window_end}
    started = time.perf_counter()
    wh.execute(sql.SQL("CREATE TEMP TABLE _limit_window ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
        names, table_ident(pipeline.target)))
    with src.cursor() as out_cur, wh.cursor() as in_cur:
        select = sql.SQL("COPY (SELECT {} FROM {} WHERE {} >= %(start)s AND {} < %(end)s) TO STDOUT (FORMAT binary)")
        cursor = sql.Identifier(pipeline.cursor)
        with out_cur.copy(select.format(names, table_ident(pipeline.source), cursor, cursor), window) as copy_out, \
                in_cur.copy(sql.SQL("COPY _limit_window ({}) FROM STDIN (FORMAT binary)").format(names)) as copy_in:
            for data in copy_out:
                copy_in.write(data)
    wh.execute(common.merge_statement(pipeline.target, columns, pipeline.primary_key, "_limit_window"))
    seconds = time.perf_counter() - started
    wh.rollback()
    src.rollback()
    return seconds


def _pick_dlt_backend(bin_dir: Path, wh: Any, src_uri: str, wh_uri: str) -> str:
    """dlt's faster backend on orders (``pyarrow`` or ``connectorx``, one snapshot each)."""
    times = {}
    orders = TableRef("tpch", "orders")
    for backend in ("pyarrow", "connectorx"):
        _reset_dlt(wh, REPO_ROOT / ".bench" / "dlt" / "probe", orders)
        times[backend] = run_dlt(bin_dir, orders, backend, REPO_ROOT / ".bench" / "dlt" / "probe", src_uri,
                                 wh_uri)["seconds"]
        print(f"[bench] dlt {backend} orders probe: {times[backend]:.2f} s", flush=True)
    return min(times, key=times.get)


def _try_dlt(bin_dir: Path, table: TableRef, backend: str, pipelines_dir: Path, src_uri: str, wh_uri: str) -> dict:
    """:func:`run_dlt`, a failure (e.g. out of memory at a big scale factor) recorded, not fatal."""
    try:
        return run_dlt(bin_dir, table, backend, pipelines_dir, src_uri, wh_uri)
    except RuntimeError as exc:
        print(f"[bench] {exc}", flush=True)
        return {"seconds": None, "peak_rss_mib": None}


def _dlt_figures(runs: list[dict]) -> dict[str, float | None]:
    ok = [r for r in runs if r["seconds"] is not None]
    return {"dlt_s": common.median(r["seconds"] for r in ok) if ok else None,
            "dlt_rss_mib": common.median(r["peak_rss_mib"] for r in ok) if ok else None}


def ours_rows(wh: Any, pipeline: str) -> int:
    """Rows the latest run of ``pipeline`` read (extract audit rows)."""
    (rows,) = wh.execute(
        "SELECT coalesce(sum(rows), 0) FROM warehouse_sync.audit WHERE pipeline = %s AND step = 'extract' AND "
        "run_id = (SELECT run_id FROM warehouse_sync.audit WHERE pipeline = %s ORDER BY id DESC LIMIT 1)",
        [pipeline, pipeline]).fetchone()
    wh.commit()
    return int(rows)


def reconcile_steps(wh: Any, pipeline: str) -> dict[str, float]:
    """Seconds of each reconcile step of the latest run of ``pipeline`` (audit rows), e.g.
    ``ours_reconcile_window_s`` (the window's full comparison) and ``ours_reconcile_keys_s`` (the key check)."""
    rows = wh.execute(
        "SELECT step, sum(seconds) FROM warehouse_sync.audit WHERE pipeline = %s AND step LIKE 'reconcile%%' AND "
        "run_id = (SELECT run_id FROM warehouse_sync.audit WHERE pipeline = %s ORDER BY id DESC LIMIT 1) GROUP BY step",
        [pipeline, pipeline]).fetchall()
    wh.commit()
    return {f"ours_{step}_s": float(seconds or 0) for step, seconds in rows}


def _reset_dlt(wh: Any, pipelines_dir: Path, table: TableRef) -> None:
    """A fresh dlt pipeline for ``table``: its dataset dropped, its state folder emptied."""
    for schema in (f"bench_dlt_{table.name}", f"bench_dlt_{table.name}_staging"):
        wh.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    wh.commit()
    shutil.rmtree(pipelines_dir, ignore_errors=True)
    pipelines_dir.mkdir(parents=True)


def _small_scale_rss(anchor: datetime) -> dict[str, float]:
    """The same extract probe on a SF 0.1 source (embedded databases of its own), for the memory target."""
    from devkit.embedded import embedded_uri, start_embedded
    from warehouse_sync.db.connections import WAREHOUSE_CONN_ID, connect_uri

    socket_dir = start_embedded(databases=["bench_source_small", "bench_warehouse_small"])
    uris = {SOURCE_CONN_ID: embedded_uri(socket_dir, "bench_source_small"),
            WAREHOUSE_CONN_ID: embedded_uri(socket_dir, "bench_warehouse_small")}
    small = connect_uri(uris[SOURCE_CONN_ID])
    common.seed_source(small, 0.1, anchor)
    small.close()
    env = {**os.environ, **{ENV_VARS[k]: v for k, v in uris.items()}}
    return {name: extract_rss(pipeline_name, anchor, env) for name, (pipeline_name, _) in TABLES.items()}


if __name__ == "__main__":
    sys.exit(main())
