"""``make bench-phases``: where the time of one snapshot goes, phase by phase, against the binary COPY pipe.

On TPC-H at ``$BENCH_SF`` (default 1) in ``bench_source``/``bench_warehouse`` (seeded as ``make bench``
seeds them), for each table of ``$BENCH_PHASES_TABLES`` (default ``"orders"``; ``"orders lineitem"``
for both), ``$BENCH_REPEATS`` times (default 1; medians are reported):

1. **limit**: the binary COPY pipe into an empty copy of the table with its primary key
   (:func:`sync_bench.measure_limit`), and the two halves of it alone: the source's binary COPY out
   read and dropped, and the same as CSV (what our extract asks for, but in one stream);
2. **snapshot**: one whole run of the pipeline with ``full_snapshot`` (into a new target, so through the
   run's build table, as the DAG's first run), inline (:func:`warehouse_sync.inline.run_window`: the
   task bodies the DAG calls, batches one after another). The phases are the ones each step measures
   itself and returns in its typed result (``Plan.phases``, ``Extracted.phases``, ``Loaded.phases``;
   also written to the audit rows): nothing is patched or wrapped here. In an extract, the source
   reads (keyset ``COPY … (FORMAT csv)`` pages and their CSV -> Arrow parse) run in the prefetching
   thread while this one writes Parquet and copies into the build table, so they are shown apart and
   left out of the total; the extract's own thread is ``wait for the source`` + ``Parquet write`` +
   ``build-table COPY`` + other.

The sums are single-process, one batch after another (in a DAG run, mapped extracts may overlap; the
bench's task seconds are sums too).
Results: ``bench/results/snapshot_phases.json`` and the table between the markers of the section
"Snapshot: where the time goes" of ``bench/results/sync.md`` (the rest of the file is kept).
``$BENCH_PHASES_PROFILE=1`` also runs one extract batch and the load under ``cProfile`` and writes
the top functions to ``bench/results/snapshot_phases_profile.txt`` (first table only). Also measured:
Parquet write and read of the same rows with other codecs (in memory), and, unless
``$BENCH_PHASES_DAG=0``, the same snapshot through the real DAG (``dag.test()``, after one warm-up run).
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from psycopg import sql

import common
import sync_bench
import sync_report
from devkit import airflow_local as runner
from devkit.paths import CONFIG
from devkit.paths import REPO as REPO_ROOT
from warehouse_sync.config import load_config
from warehouse_sync.db.catalog import describe_source
from warehouse_sync.db.statements import idents, table_ident
from warehouse_sync.inline import RunResult, run_window
from warehouse_sync.model import RunStart, TableRef, Window
from warehouse_sync.run import Run
from warehouse_sync.storage import as_path, staging_root
from warehouse_sync.sync import extract, load
from warehouse_sync.sync.plan import plan_batches

STAGING = REPO_ROOT / ".bench" / "phases"
RESULTS_JSON = common.RESULTS_DIR / "snapshot_phases.json"
SYNC_MD = common.RESULTS_DIR / "sync.md"
HEADING = sync_report.PHASES_HEADING
BEGIN, END = "<!-- snapshot-phases:begin -->", "<!-- snapshot-phases:end -->"
WARMED_UP: list[bool] = []
PIPELINES = {"orders": "tpch_orders", "lineitem": "tpch_lineitem"}

# (phase key, label) in the order of a run: keys are "<step>.<phase>" of RunResult.phases, or a
# step's "other" (its seconds less its phases); shares are of their sum, the snapshot's total.
PHASES = [
    ("plan.describe", "plan: describe_source"),
    ("plan.settle", "plan: wait for in-flight transactions"),
    ("plan.boundaries", "plan: keyset boundaries (plan_batches)"),
    ("plan.build_table", "plan: create the build table"),
    ("plan.other", "plan: other (sync state, audit)"),
    ("extract.wait_for_source", "extract: wait for the source's next page"),
    ("extract.parquet_write", "extract: Parquet write (encode, snappy, file)"),
    ("extract.build_copy", "extract: binary COPY into the build table"),
    ("extract.other", "extract: other (describe, transaction, rename, clean-up)"),
    ("load.build_finish", "load: build table -> target (primary key, cursor index, rename)"),
    ("load.ensure_target", "load: CREATE target (when there is no build table)"),
    ("load.copy", "load: COPY the files (when there is no build table)"),
    ("load.merge", "load: merge"),
    ("load.cursor_index", "load: cursor index build"),
    ("load.commit", "load: commit"),
    ("load.analyze", "load: ANALYZE (+ its commit)"),
    ("load.other", "load: other"),
]
# Measured in the extract's prefetching thread, overlapping the rows above: shown, not summed.
OVERLAPPING = [
    ("extract.read", "extract, reader thread: source COPY out of keyset pages + CSV -> Arrow"),
    ("extract.csv_to_arrow", "extract, reader thread: of which CSV -> Arrow (parse_csv_page)"),
]


def run_snapshot(src: Any, wh: Any, pipeline: Any, window_end: datetime) -> tuple[RunResult, dict[str, Any]]:
    """One snapshot of ``pipeline`` into a new target (plan, every extract batch, load), inline."""
    sync_bench.reset_ours(wh, pipeline)
    run = Run(pipeline, src, wh, f"phases-{time.time_ns()}")
    result = run_window(run, RunStart.scheduled(window_end, window_end, full_snapshot=True), staging_root(),
                        reconcile=False, open_path=as_path)
    if result.loaded.merged != sum(e.rows for e in result.extracted):
        raise RuntimeError(f"{pipeline.target}: extracted {sum(e.rows for e in result.extracted)} rows but loaded "
                           f"{result.loaded.merged}")
    files = [f for e in result.extracted for f in e.files]
    return result, {"rows": result.loaded.merged, "batches": len(result.plan.batches), "first_file": files[0].path,
                    "files_bytes": sum(f.bytes for f in files)}


def phase_seconds(result: RunResult) -> dict[str, float]:
    """The phases of :data:`PHASES` and :data:`OVERLAPPING` from the run's step results."""
    timed = result.phases
    steps = {"plan": result.plan.seconds, "extract": sum(e.seconds for e in result.extracted),
             "load": result.loaded.seconds}
    phases = {key: timed.get(key, 0.0) for key, _ in PHASES + OVERLAPPING}
    for step, seconds in steps.items():
        own = sum(v for k, v in phases.items() if k.startswith(f"{step}.") and k not in dict(OVERLAPPING)
                  and not k.endswith(".other"))
        phases[f"{step}.other"] = max(seconds - own, 0.0)  # a residue of -0.00 is timer rounding
    return phases


def source_out(src: Any, table: TableRef, names: list[str], form: str) -> float:
    """Wall seconds of ``COPY (SELECT names FROM table) TO STDOUT (FORMAT form)`` read and dropped."""
    query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT {})").format(idents(names), table_ident(table),
                                                                            sql.SQL(form))
    started = time.perf_counter()
    with src.cursor() as cur, cur.copy(query) as copy:
        for _ in copy:
            pass
    src.commit()
    return time.perf_counter() - started


def profile_once(src: Any, wh: Any, pipeline: Any, window_end: datetime) -> str:
    """The top functions (by own time) of one extract batch and of the load, under cProfile."""
    sync_bench.reset_ours(wh, pipeline)
    window = Window(None, window_end)
    batches = plan_batches(src, pipeline, window)
    columns = describe_source(src, pipeline.source, pipeline.primary_key, pipeline.cursor)
    out = io.StringIO()
    profiler = cProfile.Profile()
    profiler.enable()
    first = extract.extract_batch(src, pipeline, columns, window, batches[0], staging_root())
    profiler.disable()
    out.write(f"== {pipeline.source}: extract of batch 0 ({first.rows} rows), top 15 by own time\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    paths = [first.files[0].path] + [
        extract.extract_batch(src, pipeline, columns, window, b, staging_root()).files[0].path for b in batches[1:]]
    profiler = cProfile.Profile()
    profiler.enable()
    load.load_files(Run(pipeline, src, wh, "phases-profile"), columns, [as_path(p) for p in paths], snapshot=True)
    profiler.disable()
    out.write(f"== {pipeline.target}: load of {len(paths)} files, top 15 by own time\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


def warm_up(src: Any, wh: Any, pipeline: Any, window_end: datetime) -> None:
    """One batch extracted and loaded, not measured: the first Parquet read and COPY in a process pay
    for lazy initialisation (about 1.5 s), which a measured run should not carry."""
    sync_bench.reset_ours(wh, pipeline)
    window = Window(None, window_end)
    batch = plan_batches(src, pipeline, window)[0]
    columns = describe_source(src, pipeline.source, pipeline.primary_key, pipeline.cursor)
    written = extract.extract_batch(src, pipeline, columns, window, batch, staging_root())
    load.load_files(Run(pipeline, src, wh, "phases-warm-up"), columns, [as_path(written.files[0].path)], snapshot=True)


def parquet_codecs(path: str, total_rows: int) -> dict[str, float]:
    """Seconds to write and to read back the whole table's rows as Parquet per codec (zstd, what extract
    uses; snappy; none), scaled from the first batch file (in memory, no disk)."""
    with as_path(path).open("rb") as handle:
        table = pq.read_table(handle)
    scale = total_rows / max(table.num_rows, 1)
    figures = {}
    for codec in ("zstd", "snappy", "none"):
        buffer = io.BytesIO()
        started = time.perf_counter()
        pq.write_table(table, buffer, compression=codec)
        figures[f"parquet_write_{codec}_s"] = (time.perf_counter() - started) * scale
        figures[f"parquet_mib_{codec}"] = buffer.tell() * scale / 2**20
        started = time.perf_counter()
        pq.read_table(io.BytesIO(buffer.getvalue()))
        figures[f"parquet_read_{codec}_s"] = (time.perf_counter() - started) * scale
    return figures


def measure_table(src: Any, wh: Any, config: Any, name: str, window_end: datetime, repeats: int,
                  dags: dict | None) -> dict[str, Any]:
    """Limit, source-out figures and the phases of ``repeats`` snapshots of ``tpch.<name>`` (the run with the
    median total; the limit figures are medians), then, with ``dags``, one snapshot through the real DAG."""
    table = TableRef("tpch", name)
    pipeline = config.pipeline(PIPELINES[name])
    names = [c.name for c in describe_source(src, table, pipeline.primary_key, pipeline.cursor)]
    warm_up(src, wh, pipeline, window_end)
    runs = []
    for repeat in range(repeats):
        limit = sync_bench.measure_limit(src, wh, table)
        out_binary = source_out(src, table, names, "binary")
        out_csv = source_out(src, table, names, "csv")
        started = time.perf_counter()
        result, shape = run_snapshot(src, wh, pipeline, window_end)
        wall = time.perf_counter() - started
        phases = phase_seconds(result)
        summed = sum(phases[k] for k, _ in PHASES)
        shape.update(parquet_codecs(shape.pop("first_file"), shape["rows"]))
        runs.append({"limit_s": limit, "source_out_binary_s": out_binary, "source_out_csv_s": out_csv,
                     "wall_s": wall, "total_s": summed, **shape,
                     **{f"{k}_s": v for k, v in phases.items()}})
        print(f"[phases] {name} run {repeat + 1}: snapshot {summed:.2f} s (wall {wall:.2f} s), "
              f"limit {limit:.2f} s; " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()), flush=True)
    wh.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(sync_bench.LIMIT_SCHEMA)))
    wh.commit()
    middle = sorted(runs, key=lambda r: r["total_s"])[len(runs) // 2]
    result = {**middle, "repeats": repeats, "totals_s": [r["total_s"] for r in runs],
              **{key: common.median(r[key] for r in runs) for key in runs[0]
                 if key in ("limit_s", "source_out_binary_s", "source_out_csv_s") or key.startswith("parquet_")}}
    if dags is not None:
        if not WARMED_UP:  # the first dag.test() of a process pays for its API client and imports (about 5 s)
            sync_bench.reset_ours(wh, pipeline)
            sync_bench.run_ours(dags[pipeline.dag_id], window_end, snapshot=True)
            WARMED_UP.append(True)
        sync_bench.reset_ours(wh, pipeline)
        dag_run = sync_bench.run_ours(dags[pipeline.dag_id], window_end, snapshot=True)
        result.update({f"dag_{k}": v for k, v in dag_run.items()})
        print(f"[phases] {name} DAG snapshot: plan {dag_run['plan_s']:.2f}, extract {dag_run['extract_s']:.2f}, "
              f"load {dag_run['load_s']:.2f} s of tasks; wall {dag_run['wall_s']:.2f} s", flush=True)
    return result


def table_markdown(results: dict[str, dict[str, Any]], scale: float, measured: str) -> str:
    names = list(results)
    lines = [BEGIN, "",
             f"`make bench-phases` (`bench/snapshot_phases.py`), TPC-H SF {scale:g}, measured {measured} on 2 shared "
             "cores; " + ", ".join(f"{n}: the run with the median total of {results[n]['repeats']}" for n in names)
             + " (limit: median). One snapshot into a new target run inline (warehouse_sync.inline.run_window: the "
             "task bodies the DAG calls), one process, batches one after another; each phase as the step's own "
             "result reports it (its phases). Share: of the snapshot's total; the reader thread's rows overlap the "
             "extract's and are not in the total.", "",
             "| phase | " + " | ".join(f"{n} (s) | share" for n in names) + " |",
             "|---|" + "---:|---:|" * len(names)]
    totals = {n: sum(results[n][f"{k}_s"] for k, _ in PHASES) for n in names}
    for key, label in PHASES:
        lines.append(f"| {label} | " + " | ".join(
            f"{results[n][f'{key}_s']:.2f} | {results[n][f'{key}_s'] / totals[n]:.0%}" for n in names) + " |")
    for key, label in OVERLAPPING:
        lines.append(f"| ({label}) | " + " | ".join(f"{results[n][f'{key}_s']:.2f} | " for n in names) + " |")
    group = {"plan.": "plan", "extract.": "extract", "load.": "load"}
    for prefix, label in group.items():
        lines.append(f"| **{label} total** | " + " | ".join(
            f"**{sum(results[n][f'{k}_s'] for k, _ in PHASES if k.startswith(prefix)):.2f}** | "
            f"{sum(results[n][f'{k}_s'] for k, _ in PHASES if k.startswith(prefix)) / totals[n]:.0%}"
            for n in names) + " |")
    lines.append("| **snapshot total** | " + " | ".join(f"**{totals[n]:.2f}** | 100%" for n in names) + " |")
    lines.append("| limit: binary COPY pipe into an empty table with its primary key | " + " | ".join(
        f"{results[n]['limit_s']:.2f} | {results[n]['limit_s'] / totals[n]:.0%}" for n in names) + " |")
    lines.append("| snapshot / limit | " + " | ".join(
        f"{totals[n] / results[n]['limit_s']:.2f} | " for n in names) + " |")
    if all("dag_move_s" in results[n] for n in names):
        dag_label = "| the same snapshot through the DAG (dag.test()): plan + extract + load task seconds | "
        lines.append(dag_label + " | ".join(
            f"{results[n]['dag_move_s']:.2f} ({results[n]['dag_plan_s']:.2f} / {results[n]['dag_extract_s']:.2f} / "
            f"{results[n]['dag_load_s']:.2f}) | {results[n]['dag_move_s'] / totals[n]:.0%}" for n in names) + " |")
        lines.append("| DAG task seconds / limit | " + " | ".join(
            f"{results[n]['dag_move_s'] / results[n]['limit_s']:.2f} | " for n in names) + " |")
    lines.append("| (source binary COPY out alone, read and dropped) | " + " | ".join(
        f"{results[n]['source_out_binary_s']:.2f} | " for n in names) + " |")
    lines.append("| (source CSV COPY out alone, one stream, read and dropped) | " + " | ".join(
        f"{results[n]['source_out_csv_s']:.2f} | " for n in names) + " |")
    lines.append("| rows / batches / Parquet MiB | " + " | ".join(
        f"{results[n]['rows']:,} / {results[n]['batches']:.0f} / {results[n]['files_bytes'] / 2**20:.0f} | "
        for n in names) + " |")
    lines.append("| Parquet write of all rows in memory, zstd / snappy (ours) / none | " + " | ".join(
        f"{results[n]['parquet_write_zstd_s']:.2f} / {results[n]['parquet_write_snappy_s']:.2f} / "
        f"{results[n]['parquet_write_none_s']:.2f} | " for n in names) + " |")
    lines.append("| Parquet read of all rows in memory, zstd / snappy / none | " + " | ".join(
        f"{results[n]['parquet_read_zstd_s']:.2f} / {results[n]['parquet_read_snappy_s']:.2f} / "
        f"{results[n]['parquet_read_none_s']:.2f} | " for n in names) + " |")
    lines.append("| Parquet MiB, zstd / snappy / none | " + " | ".join(
        f"{results[n]['parquet_mib_zstd']:.0f} / {results[n]['parquet_mib_snappy']:.0f} / "
        f"{results[n]['parquet_mib_none']:.0f} | " for n in names) + " |")
    lines += ["", END]
    return "\n".join(lines)


def write_section(block: str) -> None:
    """Puts ``block`` between the markers of the section (created before the notes if missing)."""
    text = SYNC_MD.read_text() if SYNC_MD.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        section = f"{HEADING}\n\n{block}\n\n"
        at = text.find("## Notes on this run")
        text = text[:at] + section + text[at:] if at >= 0 else text.rstrip("\n") + "\n\n" + section
    SYNC_MD.write_text(text)


def main() -> int:
    scale = float(os.environ.get("BENCH_SF", "1").split()[0])
    names = os.environ.get("BENCH_PHASES_TABLES", "orders").split()
    repeats = max(1, int(os.environ.get("BENCH_REPEATS", "1")))
    src, wh = common.connect_both()
    os.environ["WAREHOUSE_SYNC_STAGING_ROOT"] = f"file://{STAGING}"
    config = load_config(CONFIG)
    dags = None
    if os.environ.get("BENCH_PHASES_DAG", "1") == "1":
        runner.airflow_environment(Path(os.environ.get("AIRFLOW_HOME", REPO_ROOT / ".airflow")))
        runner.migrate_metadata_db()
        dags = runner.load_dags()
    anchor = runner.floor_window(datetime.now(timezone.utc))
    print(f"[phases] TPC-H SF {scale:g}: generating and seeding {', '.join(names)} …", flush=True)
    tables = [TableRef("tpch", n) for n in names]
    common.seed_source(src, scale, anchor, tables=tables)
    for table in tables:
        common.vacuum(src, table)
    results = {n: measure_table(src, wh, config, n, anchor, repeats, dags) for n in names}
    measured = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    RESULTS_JSON.write_text(json.dumps({"scale": scale, "measured": measured, "tables": results}, indent=2) + "\n")
    write_section(table_markdown(results, scale, measured))
    if os.environ.get("BENCH_PHASES_PROFILE") == "1":
        text = profile_once(src, wh, config.pipeline(PIPELINES[names[0]]), anchor)
        (common.RESULTS_DIR / "snapshot_phases_profile.txt").write_text(text)
    print(table_markdown(results, scale, measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
