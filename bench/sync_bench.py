"""``make bench``: our sync against the physical limit and against dlt, same data, same server, one run.

On TPC-H at ``$BENCH_SF`` (default 1) in ``bench_source``/``bench_warehouse``:

1. **limit**: ``COPY (SELECT …) TO STDOUT (FORMAT binary)`` piped into ``COPY … FROM STDIN (FORMAT
   binary)`` into an empty copy of each table with its primary key;
2. **dlt** (its own virtualenv, ``bench/peers/dlt.txt``): ``sql_table`` with an incremental cursor on
   ``updated_at`` and ``write_disposition="merge"``; backends ``pyarrow`` and ``connectorx`` are both
   tried once, the faster one is repeated;
3. **ours**: the initial snapshot of each table through the real DAG (``dag.test()``), then, after
   TPC-H refresh set 1 plus updates of 1 % of orders, one incremental window.

Snapshot figures are medians of ``$BENCH_REPEATS`` runs (default 3); the incremental window is run
once per tool (the workload is applied once). "ours" is the task time of plan + extract + load (what
the issue calls end to end; reconcile and validate are reported apart, as is Airflow's own time:
wall time of the run minus the time inside tasks). Peak RSS is that of one extract task run in its
own process (ours) and of the dlt process. Results: ``bench/results/sync.md``, ``sync.png`` and
``latest.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from psycopg import sql

import common
from devkit import airflow_local as runner
from devkit import tpch
from devkit.embedded import ENV_VARS
from devkit.paths import CONFIG
from devkit.paths import REPO as REPO_ROOT
from warehouse_sync.bookkeeping.migrate import ensure_tables
from warehouse_sync.config import load_config
from warehouse_sync.db.catalog import describe_source
from warehouse_sync.db.connections import SOURCE_CONN_ID
from warehouse_sync.db.statements import idents, table_ident
from warehouse_sync.model import TableRef
from warehouse_sync.sync.load import column_definitions

TABLES = {"tpch.orders": ("tpch_orders", ("o_orderkey",)), "tpch.lineitem": ("tpch_lineitem", ("l_orderkey", "l_linenumber"))}
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
        f"p = load_config({str(CONFIG)!r}).pipeline({pipeline_name!r})\n"
        f"end = datetime.fromisoformat({window_end.isoformat()!r})\n"
        "with source_and_warehouse() as (src, wh):\n"
        "    planned = tasks.plan(src, wh, p, RunStart.scheduled(end, end, True), 'rss-probe')\n"
        f"    tasks.extract(src, wh, p, planned['window'], planned['batches'][0]['batch'], 'rss-probe', root=Path({str(STAGING / 'rss')!r}))\n"
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
    scale = float(os.environ.get("BENCH_SF", "1"))
    repeats = common.repeats()
    embedded = not all(os.environ.get(var) for var in ENV_VARS.values())
    src_uri, wh_uri = common.bench_uris()
    os.environ["WAREHOUSE_SYNC_STAGING_ROOT"] = f"file://{STAGING}"
    os.environ.pop("WAREHOUSE_SYNC_CONFIG", None)
    src, wh = common.connect_both()
    config = load_config(CONFIG)
    anchor = runner.floor_window(datetime.now(timezone.utc))
    print(f"[bench] TPC-H SF {scale:g}: generating and seeding …", flush=True)
    data, counts = common.seed_source(src, scale, anchor)
    runner.airflow_environment(Path(os.environ.get("AIRFLOW_HOME", REPO_ROOT / ".airflow")))
    runner.migrate_metadata_db()
    dags = runner.load_dags()
    results: dict[tuple[str, str], dict[str, Any]] = {}

    for name in TABLES:
        table = TableRef(*name.split("."))
        limit = [measure_limit(src, wh, table) for _ in range(repeats)]
        results[(name, "snapshot")] = {"rows": counts[table.name], "limit_s": common.median(limit)}
        print(f"[bench] limit {name}: {', '.join(f'{x:.2f}' for x in limit)} s", flush=True)
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
            print(f"[bench] ours snapshot {name}: {runs[-1]['move_s']:.2f} s moving, "
                  f"{runs[-1]['airflow_s']:.2f} s Airflow", flush=True)
        record = results[(name, "snapshot")]
        for key in runs[0]:
            record[f"ours_{key}"] = common.median(r[key] for r in runs)
        record["ours_s"] = record["ours_move_s"]
        record["peak_rss_mib"] = extract_rss(pipeline_name, anchor, dict(os.environ))

    small_rss = _small_scale_rss(anchor) if scale > 0.1 and embedded else None
    bin_dir = common.peer_venv("dlt")
    dlt_root = REPO_ROOT / ".bench" / "dlt"
    backend_times = {}
    orders = TableRef("tpch", "orders")
    for backend in ("pyarrow", "connectorx"):
        _reset_dlt(wh, dlt_root / "probe", orders)
        backend_times[backend] = run_dlt(bin_dir, orders, backend, dlt_root / "probe", src_uri, wh_uri)["seconds"]
        print(f"[bench] dlt {backend} orders probe: {backend_times[backend]:.2f} s", flush=True)
    backend = min(backend_times, key=backend_times.get)
    for name in TABLES:
        table = TableRef(*name.split("."))
        runs = []
        for _ in range(repeats):
            _reset_dlt(wh, dlt_root / f"run-{table.name}", table)
            runs.append(run_dlt(bin_dir, table, backend, dlt_root / f"run-{table.name}", src_uri, wh_uri))
            print(f"[bench] dlt {backend} snapshot {name}: {runs[-1]['seconds']:.2f} s", flush=True)
        results[(name, "snapshot")].update({"dlt_s": common.median(r["seconds"] for r in runs),
                                            "dlt_rss_mib": common.median(r["peak_rss_mib"] for r in runs)})

    workload = tpch.apply_workload(src, data, refresh_set=1, update_every=100, deletes=True)
    print(f"[bench] workload: {workload}", flush=True)
    window_end = runner.floor_window(datetime.now(timezone.utc)) + runner.WINDOW
    for name, (pipeline_name, _) in TABLES.items():
        pipeline = config.pipeline(pipeline_name)
        ours = run_ours(dags[pipeline.dag_id], window_end, snapshot=False)
        table = TableRef(*name.split("."))
        dlt_run = run_dlt(bin_dir, table, backend, dlt_root / f"run-{table.name}", src_uri, wh_uri)
        results[(name, "incremental")] = {
            "rows": ours_rows(wh, pipeline.name), "limit_s": None, "ours_s": ours["tasks_s"],
            **{f"ours_{k}": v for k, v in ours.items()}, "dlt_s": dlt_run["seconds"],
            "dlt_rss_mib": dlt_run["peak_rss_mib"], "peak_rss_mib": results[(name, "snapshot")]["peak_rss_mib"],
        }
        print(f"[bench] incremental {name}: ours {ours['tasks_s']:.2f} s of tasks, dlt {dlt_run['seconds']:.2f} s",
              flush=True)
    write_results(results, scale, backend, small_rss, repeats)
    return 0


def ours_rows(wh: Any, pipeline: str) -> int:
    """Rows the latest run of ``pipeline`` read (extract audit rows)."""
    (rows,) = wh.execute(
        "SELECT coalesce(sum(rows), 0) FROM warehouse_sync.audit WHERE pipeline = %s AND step = 'extract' AND "
        "run_id = (SELECT run_id FROM warehouse_sync.audit WHERE pipeline = %s ORDER BY id DESC LIMIT 1)",
        [pipeline, pipeline]).fetchone()
    wh.commit()
    return int(rows)


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


def write_results(results: dict, scale: float, backend: str, small_rss: dict | None, repeats: int) -> None:
    """``latest.json``, ``sync.md`` and ``sync.png`` under ``bench/results``."""
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    records = [{"table": t, "step": s, "rows": r["rows"], "ours_s": round(r["ours_s"], 3),
                "limit_s": round(r["limit_s"], 3) if r["limit_s"] else None, "dlt_s": round(r["dlt_s"], 3),
                "peak_rss_mib": round(r["peak_rss_mib"], 1)} for (t, s), r in results.items()]
    (common.RESULTS_DIR / "latest.json").write_text(json.dumps(records, indent=2) + "\n")
    lines = [f"# Sync benchmark: TPC-H SF {scale:g}, ours vs the limit vs dlt ({backend} backend)", "",
             f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores; snapshot figures are "
             f"medians of {repeats} runs, the incremental window one run.", "",
             "ours (s): plan + extract + load for a snapshot (the target's measure); all task time, reconcile "
             "and validate included, for the incremental window.", "",
             "| table | step | rows | ours (s) | plan + extract + load (s) | rows/s | limit (s) | ours / limit | dlt (s) "
             "| dlt / ours | Airflow overhead (s) | reconcile + validate (s) | extract task peak RSS (MiB) "
             "| dlt peak RSS (MiB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (table, step), r in results.items():
        limit = f"{r['limit_s']:.2f}" if r["limit_s"] else "–"
        ratio = f"{r['ours_s'] / r['limit_s']:.2f}" if r["limit_s"] else "–"
        lines.append(
            f"| {table} | {step} | {r['rows']:,} | {r['ours_s']:.2f} | {r['ours_move_s']:.2f} | "
            f"{r['rows'] / max(r['ours_move_s'], 1e-9):,.0f} | "
            f"{limit} | {ratio} | {r['dlt_s']:.2f} | {r['dlt_s'] / r['ours_s']:.1f} | {r['ours_airflow_s']:.2f} | "
            f"{r['ours_reconcile_s'] + r['ours_validate_s']:.2f} | {r['peak_rss_mib']:.0f} | {r['dlt_rss_mib']:.0f} |")
    if small_rss:
        lines += ["", "Extract task peak RSS at SF 0.1 vs SF " + f"{scale:g}: " + "; ".join(
            f"{t}: {small_rss[t]:.0f} MiB vs {results[(t, 'snapshot')]['peak_rss_mib']:.0f} MiB "
            f"({results[(t, 'snapshot')]['peak_rss_mib'] / small_rss[t] - 1:+.0%})" for t in small_rss)]
    text = "\n".join(lines) + "\n"
    (common.RESULTS_DIR / "sync.md").write_text(text)
    _chart(results, scale)
    print("\n" + text)


def _chart(results: dict, scale: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{t.split('.')[1]}\n{s}" for t, s in results]
    series = {"limit (binary COPY)": [r["limit_s"] for r in results.values()],
              "ours (plan + extract + load)": [r["ours_move_s"] for r in results.values()],
              "dlt": [r["dlt_s"] for r in results.values()]}
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - 1) * width for x, v in enumerate(values) if v is not None]
        shown = [v for v in values if v is not None]
        bars = ax.bar(xs, shown, width, label=name)
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in shown], fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("seconds (lower is better)")
    ax.set_title(f"TPC-H SF {scale:g}: PostgreSQL to PostgreSQL")
    ax.legend()
    fig.tight_layout()
    fig.savefig(common.RESULTS_DIR / "sync.png", dpi=110)


if __name__ == "__main__":
    sys.exit(main())
