"""``make bench-tasks``: wall time, CPU seconds and peak RSS of every task, each in its own process.

A worker runs each task in a process of its own; so does this benchmark. For each TPC-H scale factor
of ``$BENCH_SCALES`` (default ``"1"``) and each table (orders, lineitem), in ``bench_source`` /
``bench_warehouse`` (seeded as ``make bench`` seeds them):

1. a **snapshot** into a new target: ``plan``, ``extract`` (every batch, each in its own process;
   the figures are the sum of wall and CPU seconds and the largest peak RSS), ``load``, ``reconcile``,
   ``validate``;
2. the **same fixed change** as ``make bench`` (:data:`sync_bench.WORKLOAD`), then one **incremental**
   window through the same tasks;
3. the daily ``reconcile_table``.

Each task runs the real task body (:mod:`warehouse_sync.tasks`) in a fresh ``python`` process, with
the XCom values passed as JSON files, and reports its wall seconds, its CPU seconds (user + system,
``getrusage``) and its peak RSS (``VmHWM`` of ``/proc/self/status``: the high-water mark of that
process alone), beside the task's own phases. The server's CPU is not in these figures. Results:
``bench/results/tasks.json`` (every scale factor measured so far) and ``bench/results/tasks.md``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from devkit.paths import CONFIG
from devkit.paths import REPO as REPO_ROOT
from warehouse_sync.config import load_config

# Only what a task imports itself is imported at the top: a child process measures one task's memory.
STATE = REPO_ROOT / ".bench" / "tasks"
RESULTS_JSON = REPO_ROOT / "bench" / "results" / "tasks.json"
RESULTS_MD = REPO_ROOT / "bench" / "results" / "tasks.md"
STEPS = ("plan", "extract", "load", "reconcile", "validate")


def run_step(pipeline_name: str, step: str, state: Path, batch: int | None = None) -> dict[str, Any]:
    """Runs one task body in a child process (:func:`child`) and returns its figures."""
    args = [sys.executable, __file__, "child", pipeline_name, step, str(state)]
    args += [str(batch)] if batch is not None else []
    done = subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT, env=dict(os.environ))
    if done.returncode:
        raise RuntimeError(f"{pipeline_name} {step}: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(pipeline_name: str, step: str, state: Path, batch: int | None) -> None:
    """One task in this process: reads the XComs it needs from ``state``, writes its own, prints its figures."""
    started, cpu = time.monotonic(), os.times()
    from warehouse_sync import tasks
    from warehouse_sync.db.connections import connect_uri, connection_uri, sqlalchemy_url
    from warehouse_sync.model import Extracted, Plan, RunStart
    from warehouse_sync.run import opened

    pipeline = load_config(CONFIG).pipeline(pipeline_name)
    run_id = json.loads((state / "run.json").read_text())["run_id"]
    phases: dict[str, float] = {}
    if step == "validate":
        uri = connection_uri(pipeline.warehouse_conn_id)
        with connect_uri(uri, pipeline.warehouse_conn_id) as wh:
            plan = Plan.from_dict(json.loads((state / "plan.json").read_text()))
            tasks.validate(wh, sqlalchemy_url(uri), pipeline, plan, run_id)
    else:
        with opened(pipeline, run_id) as run:
            if step == "plan":
                start = RunStart(**{k: datetime.fromisoformat(v) if isinstance(v, str) else v
                                    for k, v in json.loads((state / "start.json").read_text()).items()})
                plan = tasks.plan(run, start)
                (state / "plan.json").write_text(json.dumps(plan.to_dict()))
                phases = plan.phases
            elif step == "extract":
                plan = Plan.from_dict(json.loads((state / "plan.json").read_text()))
                extracted = tasks.extract(run, plan, plan.batches[batch or 0])
                (state / f"extract-{batch}.json").write_text(json.dumps(extracted.to_dict()))
                phases = extracted.phases
            elif step == "load":
                plan = Plan.from_dict(json.loads((state / "plan.json").read_text()))
                staged = [Extracted.from_dict(json.loads(p.read_text())) for p in sorted(state.glob("extract-*.json"))]
                phases = tasks.load(run, plan, staged).phases
            elif step == "reconcile":
                tasks.reconcile(run, Plan.from_dict(json.loads((state / "plan.json").read_text())))
            elif step == "reconcile_table":
                tasks.reconcile_table(run)
            else:
                raise ValueError(f"unknown step {step!r}")
    used = os.times()
    hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    print(json.dumps({"wall_s": round(time.monotonic() - started, 3),
                      "cpu_s": round(used.user - cpu.user + used.system - cpu.system, 3),
                      "peak_rss_mib": round(int(hwm.split()[1]) / 1024, 1), "phases": phases}))


def run_window(pipeline: Any, start: dict[str, Any], label: str) -> dict[str, dict[str, Any]]:
    """Every task of one run of ``pipeline``, each in its own process: ``{task: figures}``."""
    state = STATE / pipeline.name / label
    state.mkdir(parents=True, exist_ok=True)
    for old in state.glob("*.json"):
        old.unlink()
    (state / "run.json").write_text(json.dumps({"run_id": f"bench-tasks-{label}-{time.time_ns()}"}))
    (state / "start.json").write_text(json.dumps(start, default=str))
    figures = {"plan": run_step(pipeline.name, "plan", state)}
    batches = len(json.loads((state / "plan.json").read_text())["batches"])
    extracts = [run_step(pipeline.name, "extract", state, i) for i in range(batches)]
    figures["extract"] = {"wall_s": round(sum(e["wall_s"] for e in extracts), 3),
                          "cpu_s": round(sum(e["cpu_s"] for e in extracts), 3),
                          "peak_rss_mib": max(e["peak_rss_mib"] for e in extracts), "tasks": batches}
    for step in STEPS[2:]:
        figures[step] = run_step(pipeline.name, step, state)
    return figures


def measure(scale: float) -> dict[str, Any]:
    """Snapshot, fixed change, incremental window and daily reconcile of both tables at ``scale``."""
    import common
    import sync_bench
    from devkit import airflow_local as runner
    from devkit import tpch

    src, wh = common.connect_both()
    config = load_config(CONFIG)
    anchor = runner.floor_window(datetime.now(timezone.utc))
    print(f"[bench-tasks] TPC-H SF {scale:g}: generating and seeding …", flush=True)
    data, counts = common.seed_source(src, scale, anchor)
    for table in (tpch.ORDERS, tpch.LINEITEM):
        common.vacuum(src, table)
    result: dict[str, Any] = {"rows": {}, "snapshot": {}, "incremental": {}, "reconcile_table": {}}
    pipelines = [config.pipeline(name) for name, _ in sync_bench.TABLES.values()]
    for pipeline in pipelines:
        sync_bench.reset_ours(wh, pipeline)
        result["rows"][pipeline.name] = counts[pipeline.source.name]
        snapshot = {"logical_date": anchor, "interval_start": anchor, "interval_end": anchor, "run_after": anchor,
                    "manual": False, "full_snapshot": True}
        result["snapshot"][pipeline.name] = run_window(pipeline, snapshot, "snapshot")
        print(f"[bench-tasks] SF {scale:g} snapshot {pipeline.name}: {result['snapshot'][pipeline.name]}", flush=True)
    tpch.apply_workload(src, data, refresh_set=1, deletes=True, **sync_bench.WORKLOAD)
    for pipeline in pipelines:
        common.vacuum(wh, pipeline.target)
    end = runner.floor_window(datetime.now(timezone.utc)) + runner.WINDOW
    start = end - timedelta(hours=2)
    for pipeline in pipelines:
        window = {"logical_date": start, "interval_start": start, "interval_end": end, "run_after": end,
                  "manual": False, "full_snapshot": False}
        result["incremental"][pipeline.name] = run_window(pipeline, window, "incremental")
        print(f"[bench-tasks] SF {scale:g} incremental {pipeline.name}: {result['incremental'][pipeline.name]}",
              flush=True)
        result["reconcile_table"][pipeline.name] = run_step(pipeline.name, "reconcile_table",
                                                           STATE / pipeline.name / "incremental")
    src.close()
    wh.close()
    result["measured"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return result


def markdown(results: dict[str, Any], measured: str) -> str:
    """The per-task table of every scale factor measured (``results``: ``{scale: measure()}``)."""
    import sync_bench

    lines = ["# Every task's time, CPU and peak memory (`make bench-tasks`)", "",
             f"`bench/task_resources.py`, measured {measured} on this 2-core machine. Each task ran the real task "
             "body in its own process, as a worker runs it; wall and CPU seconds of that process (CPU: user + system, "
             "the database servers' CPU is not in it) and its peak RSS (VmHWM). extract: the sum over its mapped "
             "tasks, peak RSS the largest. Incremental: the same fixed change at every scale factor "
             f"({sync_bench.WORKLOAD}).", "",
             "| SF | table | run | task | wall s | CPU s | peak RSS MiB |", "|---:|---|---|---|---:|---:|---:|"]
    for scale in sorted(results, key=float):
        entry = results[scale]
        for run in ("snapshot", "incremental"):
            for table, figures in entry[run].items():
                for task in STEPS:
                    f = figures[task]
                    lines.append(f"| {float(scale):g} | {table} | {run} | {task} | {f['wall_s']:.2f} | "
                                 f"{f['cpu_s']:.2f} | {f['peak_rss_mib']:.0f} |")
        for table, f in entry["reconcile_table"].items():
            lines.append(f"| {float(scale):g} | {table} | daily | reconcile_table | {f['wall_s']:.2f} | "
                         f"{f['cpu_s']:.2f} | {f['peak_rss_mib']:.0f} |")
    return "\n".join(lines + goals(results)) + "\n"


def goals(results: dict[str, Any]) -> list[str]:
    """Issue 22's goals read off ``results``: snapshot validate against plan + extract + load, validate's
    peak RSS, and every task's peak RSS at the largest scale factor against SF 1; each scale factor's
    measurement time."""
    lines = ["", "## Goals (issue 22)", "", "| SF | measured | table | snapshot validate / (plan + extract + load) "
             "| validate peak RSS MiB (snapshot / incremental) |", "|---:|---|---|---:|---:|"]
    for scale in sorted(results, key=float):
        entry = results[scale]
        for table, figures in entry["snapshot"].items():
            moved = sum(figures[t]["wall_s"] for t in ("plan", "extract", "load"))
            ratio = figures["validate"]["wall_s"] / moved
            lines.append(f"| {float(scale):g} | {entry.get('measured', 'an earlier run')} | {table} | "
                         f"{ratio:.2f} ({figures['validate']['wall_s']:.1f} s / {moved:.1f} s) "
                         f"{'met' if ratio <= 0.3 else 'missed'} | {figures['validate']['peak_rss_mib']:.0f} / "
                         f"{entry['incremental'][table]['validate']['peak_rss_mib']:.0f} |")
    largest = max(results, key=float)
    if "1" in results and largest != "1":
        lines += ["", f"Peak RSS at SF {float(largest):g} against SF 1 (goal: within 1.2x):", "",
                  "| run | task | table | SF 1 MiB | largest MiB | ratio |", "|---|---|---|---:|---:|---:|"]
        for run in ("snapshot", "incremental"):
            for table, figures in results["1"][run].items():
                for task in STEPS:
                    small, big = figures[task]["peak_rss_mib"], results[largest][run][table][task]["peak_rss_mib"]
                    lines.append(f"| {run} | {task} | {table} | {small:.0f} | {big:.0f} | {big / small:.2f}"
                                 f"{'' if big / small <= 1.2 else ' (over 1.2)'} |")
    return lines


def main() -> int:
    import common

    os.environ["WAREHOUSE_SYNC_STAGING_ROOT"] = f"file://{REPO_ROOT / '.bench' / 'staging'}"
    os.environ["WAREHOUSE_SYNC_REPORTS_ROOT"] = f"file://{REPO_ROOT / '.bench' / 'reports'}"
    os.environ.pop("WAREHOUSE_SYNC_CONFIG", None)
    common.bench_uris()  # sets both AIRFLOW_CONN_* variables for the child processes
    results = json.loads(RESULTS_JSON.read_text())["scales"] if RESULTS_JSON.exists() else {}
    for scale in common.scales():  # written after each scale factor: a later one that fails loses nothing
        results[f"{scale:g}"] = measure(scale)
        measured = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        RESULTS_JSON.write_text(json.dumps({"measured": measured, "scales": results}, indent=1, default=str) + "\n")
        RESULTS_MD.write_text(markdown(results, measured))
    print(RESULTS_MD.read_text())
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3], Path(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else None)
    else:
        sys.exit(main())
