"""``make bench-cdc``: CDC mode against cursor mode on the same TPC-H change workloads.

On TPC-H ``$BENCH_CDC_TABLE`` (``orders``, the default, or ``lineitem``) at ``$BENCH_SF`` (default 1) in
``bench_source``/``bench_warehouse``, through the task
functions the DAG calls (plan + extract + load, then reconcile timed apart; no Airflow overhead):

0. the **limit**: one binary COPY pipe of the table into an empty copy (:func:`sync_bench.measure_limit`);
1. the initial snapshot in each mode (both: parallel keyset batches, run here one after the other);
2. per change volume (``$BENCH_CDC_VOLUMES``, default ``1000,10000,100000`` rows updated in
   transactions of 5 000): one run in each mode, CDC's first, timed, with its reconcile (cursor mode's includes the
   key check that finds hard deletes), CDC's lag (seconds from the oldest change's source commit to the
   warehouse commit), the slot's retained WAL after the run against the WAL written since the run
   began, and the slot's spilled bytes;
3. TPC-H refresh set 1 (RF1 inserts, updates of 1 % of orders, RF2 hard deletes: the workload of
   ``make bench``): one run in each mode, and whether the RF2 deletes arrived in that run.

Each record also has the task process's CPU seconds (``getrusage``, this process runs every step), the
server's CPU seconds (the embedded server's processes, source and warehouse together, when the server
runs on this machine) and the one-minute load average when the step began. Records (``mode`` in each)
go to ``bench/results/cdc_sf<scale>.json`` and ``.md`` (``cdc_sf<scale>_lineitem.*`` for lineitem), with the
goal ratios of issue 23 at the end.
"""

from __future__ import annotations

import json
import os
import resource
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
from psycopg import sql

import common
import sync_bench
from devkit import airflow_local as runner
from devkit import tpch
from devkit.paths import REPO as REPO_ROOT
from warehouse_sync import tasks
from warehouse_sync.bookkeeping.migrate import ensure_tables
from warehouse_sync.cdc import slot as slots
from warehouse_sync.config import Pipeline
from warehouse_sync.inline import run_window
from warehouse_sync.model import RunStart, TableRef
from warehouse_sync.reconcile.slices import run_key_slice
from warehouse_sync.run import Run

STAGING = REPO_ROOT / ".bench" / "staging-cdc"
# Each benchmarked table: its key, the column the volume updates rewrite, and that column's width.
TABLES = {
    "orders": (("o_orderkey",), "o_comment", 40),
    "lineitem": (("l_orderkey", "l_linenumber"), "l_comment", 20),
}


def pipelines(table: str) -> dict[str, Pipeline]:
    """The cursor-mode and CDC-mode pipelines over ``tpch.<table>``, each into its own target schema."""
    key = TABLES[table][0]
    base = dict(source=TableRef("tpch", table), primary_key=key, cursor="updated_at", settle_timeout_seconds=5)
    return {"cursor": Pipeline(name=f"bench_{table}_cursor", target=TableRef("bench_cursor", table), **base),
            "cdc": Pipeline(name=f"bench_{table}_cdc", target=TableRef("bench_cdc", table), mode="cdc", **base)}


def update_rows(table: str) -> sql.Composed:
    """Rewrites the comment of ``%s`` rows from key position ``%s`` on (a workload, not a sync: OFFSET is fine)."""
    key, column, width = TABLES[table]
    keys = sql.SQL(", ").join(map(sql.Identifier, key))
    return sql.SQL("UPDATE {table} SET {column} = left(md5({column} || %s), {width}) WHERE ({keys}) IN "
                   "(SELECT {keys} FROM {table} ORDER BY {keys} OFFSET %s LIMIT %s)").format(
        table=sql.Identifier("tpch", table), column=sql.Identifier(column), width=sql.Literal(width), keys=keys)


def reset(src: Any, wh: Any, pipes: dict[str, Pipeline]) -> None:
    """Empty targets and bookkeeping for both pipelines, no slot or publication, no staged files."""
    ensure_tables(wh)
    for p in pipes.values():
        wh.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(p.target.schema)))
        for table in ("audit", "sync_state", "drift_history"):
            wh.execute(sql.SQL("DELETE FROM {} WHERE pipeline = %s").format(sql.Identifier("warehouse_sync", table)),
                       [p.name])
    wh.commit()
    slot = pipes["cdc"].cdc_slot
    src.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    src.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(slot)))
    src.commit()


def server_process(src: Any) -> psutil.Process | None:
    """The source server's postmaster when it runs on this machine (its ``postmaster.pid``), else None."""
    try:
        (directory,) = src.execute("SHOW data_directory").fetchone()  # type: ignore[misc]
        src.commit()
        return psutil.Process(int((Path(directory) / "postmaster.pid").read_text().split()[0]))
    except Exception:  # a remote server, or no right to read its settings: the figure is left out
        src.rollback()
        return None


def server_cpu(postmaster: psutil.Process | None) -> float | None:
    """CPU seconds (user + system) of the server: its live processes and the children it has reaped."""
    if postmaster is None:
        return None
    total = 0.0
    for process in [postmaster, *postmaster.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + (times.children_user + times.children_system
                                              if process.pid == postmaster.pid else 0.0)
    return total


def task_cpu() -> float:
    """CPU seconds (user + system) of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def slot_figures(src: Any, slot: str) -> dict[str, int]:
    """The slot's retained WAL (bytes from ``restart_lsn`` to the current LSN) and its spill and decoded
    totals (``pg_stat_replication_slots``, cumulative bytes)."""
    row = src.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint, coalesce(st.spill_bytes, 0), "
        "coalesce(st.total_bytes, 0) FROM pg_replication_slots s "
        "LEFT JOIN pg_stat_replication_slots st USING (slot_name) WHERE s.slot_name = %s", (slot,)).fetchone()
    src.commit()
    return {} if row is None else {"retained_wal_bytes": row[0], "spill_bytes": row[1], "decoded_bytes": row[2]}


def run(src: Any, wh: Any, pipeline: Pipeline, label: str, postmaster: psutil.Process | None,
        reconcile: bool = True) -> dict[str, Any]:
    """plan -> extract (each batch) -> load, timed (seconds), then the reconcile timed apart; CDC adds the
    slot's figures after the run."""
    run_id = f"bench-{pipeline.mode}-{label}-{time.time_ns()}"
    load_average = os.getloadavg()[0]
    slot_before = slot_figures(src, pipeline.cdc_slot) if pipeline.mode == "cdc" else {}
    start_lsn, _ = slots.current_lsn(src)
    cpu, server = task_cpu(), server_cpu(postmaster)
    started = time.monotonic()
    the_run = Run(pipeline, src, wh, run_id)
    result = run_window(the_run, RunStart(None, None, None, datetime.now(timezone.utc), manual=True), STAGING,
                        reconcile=False)
    moved = time.monotonic() - started
    if reconcile:
        tasks.reconcile(the_run, result.plan)
    total = time.monotonic() - started
    server_after = server_cpu(postmaster)
    record: dict[str, Any] = {
        "mode": pipeline.mode, "step": label, "seconds": round(moved, 3),
        "reconcile_seconds": round(total - moved, 3), "total_seconds": round(total, 3),
        "task_cpu_seconds": round(task_cpu() - cpu, 3),
        "server_cpu_seconds": None if server is None or server_after is None else round(server_after - server, 3),
        "load_average": round(load_average, 2),
        "rows_read": sum(e.rows for e in result.extracted), "rows_merged": result.loaded.merged,
        "phases": result.phases, **sync_bench.reconcile_steps(wh, pipeline.name)}
    if pipeline.mode == "cursor" and reconcile:  # which key slice this run's key check read (reconcile/slices.py)
        index, slices = run_key_slice(src, pipeline, result.plan.window.end)
        src.commit()
        record["key_slice"] = f"{index + 1}/{slices}"
    if "slot" in result.loaded.facts:
        slot = result.loaded.facts["slot"]
        record.update({k: slot[k] for k in ("lag_seconds", "freshest_lag_seconds")})
    if pipeline.mode == "cdc":
        after = slot_figures(src, pipeline.cdc_slot)
        (since,) = src.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint",
                               (start_lsn,)).fetchone()  # type: ignore[misc]
        src.commit()
        record.update({"retained_wal_bytes": after.get("retained_wal_bytes"), "wal_since_run_start_bytes": since,
                       "spill_bytes": after.get("spill_bytes", 0) - slot_before.get("spill_bytes", 0),
                       "decoded_bytes": after.get("decoded_bytes", 0) - slot_before.get("decoded_bytes", 0)})
    print(f"[bench-cdc] {label:<16} {pipeline.mode:<6} {record['seconds']:7.2f} s + reconcile "
          f"{record['reconcile_seconds']:.2f} s, {record['rows_read']} read, {record['rows_merged']} merged, "
          f"task CPU {record['task_cpu_seconds']:.2f} s"
          + (f", lag {record['lag_seconds']:.1f} s" if "lag_seconds" in record else ""),
          flush=True)
    return record


def main() -> int:
    scale = float(os.environ.get("BENCH_SF", "1"))
    table = os.environ.get("BENCH_CDC_TABLE", "orders")
    if table not in TABLES:
        raise SystemExit(f"BENCH_CDC_TABLE={table!r}: one of {', '.join(TABLES)}")
    volumes = [int(v) for v in os.environ.get("BENCH_CDC_VOLUMES", "1000,10000,100000").split(",")]
    pipes = pipelines(table)
    src, wh = common.connect_both()
    (level,) = src.execute("SHOW wal_level").fetchone()  # type: ignore[misc]
    src.commit()
    if level != "logical":
        raise SystemExit(f"the benchmark source runs with wal_level={level}; CDC mode needs logical")
    anchor = runner.floor_window(datetime.now(timezone.utc))
    print(f"[bench-cdc] TPC-H SF {scale:g}: generating and seeding orders and lineitem; measuring {table} …",
          flush=True)
    reset(src, wh, pipes)
    data, counts = common.seed_source(src, scale, anchor, tables=(tpch.ORDERS, tpch.LINEITEM))
    postmaster = server_process(src)
    limit = sync_bench.measure_limit(src, wh, pipes["cdc"].source)
    print(f"[bench-cdc] limit (binary COPY pipe) {limit:.2f} s", flush=True)
    records: list[dict[str, Any]] = [{"mode": "limit", "step": "snapshot", "seconds": round(limit, 3),
                                      "rows": counts[table]}]
    records += [{**run(src, wh, p, "snapshot", postmaster, reconcile=False), "rows": counts[table]}
                for p in pipes.values()]
    # CDC runs first after each change: its lag counts from the oldest change's commit, and cursor mode's
    # run before it would have added that run's seconds to the lag (measured so until 2026-12-06).
    after_change = [pipes["cdc"], pipes["cursor"]]
    for volume in volumes:
        volume = min(volume, counts[table])
        for offset in range(0, volume, 5000):
            src.execute(update_rows(table), (f"v{volume}", offset, min(5000, volume - offset)))
            src.commit()
        records += [{**run(src, wh, p, f"updates {volume}", postmaster), "changes": volume} for p in after_change]
    workload = tpch.apply_workload(src, data, refresh_set=1, update_every=100, deletes=True)
    changes = workload.inserted[table] + workload.updated[table] + workload.deleted[table]
    deleted = sorted(tpch.deleted_keys(data, 1))
    for p in after_change:
        record = {**run(src, wh, p, "tpch rf1+rf2", postmaster), "changes": changes}
        target = sql.Identifier(p.target.schema, p.target.name)
        (marked,) = wh.execute(sql.SQL("SELECT count(*) FROM {} WHERE _deleted_at IS NOT NULL AND {} = ANY(%s)")
                               .format(target, sql.Identifier(p.primary_key[0])), (deleted,)).fetchone()  # type: ignore[misc]
        wh.commit()
        record["rf2_deletes_in_run"] = f"{marked}/{workload.deleted[table]}"
        records.append(record)
    reset(src, wh, pipes)  # never leave a slot retaining WAL behind
    write_results(records, scale, table)
    return 0


def write_results(records: list[dict[str, Any]], scale: float, table: str = "orders") -> None:
    """``bench/results/cdc_sf<scale>.json`` and ``.md`` (orders), ``cdc_sf<scale>_<table>.*`` for another table."""
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for r in records:
        r.update({"scale": scale, "table": table, "measured_at": stamp})
    name = f"cdc_sf{scale:g}" + ("" if table == "orders" else f"_{table}")
    page = report(records, scale, stamp, table)
    (common.RESULTS_DIR / f"{name}.json").write_text(json.dumps(records, indent=2) + "\n")
    (common.RESULTS_DIR / f"{name}.md").write_text("\n".join(page) + "\n")
    print("\n".join(page))


def _figure(value: Any, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def report(records: list[dict[str, Any]], scale: float, stamp: str, table: str = "orders") -> list[str]:
    """The Markdown page: every record, then the goal ratios of issue 23 (CDC against cursor mode)."""
    lines = [f"# CDC mode against cursor mode, TPC-H {table} SF {scale:g} ({stamp})", "",
             "Seconds are wall time of one run (plan + extract + load; the reconcile apart). Task CPU is this "
             "process's; server CPU is the one embedded server's (source and warehouse). Retained WAL is the "
             "slot's after the run, beside the WAL written since the run began (the warehouse shares the server).",
             "", "| step | mode | changes | rows read | rows merged | s (p+e+l) | reconcile s (key check) | task CPU s "
             "| server CPU s | lag s (oldest/newest) | retained WAL / since run start (MiB) | spill B | load avg "
             "| RF2 deletes in the run (cursor: the key slice its key check read) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    mib = 1 << 20
    for r in records:
        if r["mode"] == "limit":
            lines.append(f"| {r['step']} | limit (binary COPY) | {r['rows']} | - | - | {r['seconds']:.2f} "
                         "| - | - | - | - | - | - | - | - |")
            continue
        lag = f"{r['lag_seconds']:.1f} / {r['freshest_lag_seconds']:.1f}" if "lag_seconds" in r else "-"
        wal = (f"{r['retained_wal_bytes'] / mib:,.1f} / {r['wal_since_run_start_bytes'] / mib:,.1f}"
               if r.get("retained_wal_bytes") is not None else "-")
        keys = r.get("ours_reconcile_keys_s")
        deletes = r.get("rf2_deletes_in_run", "-") + (f" (key slice {r['key_slice']})" if r.get("key_slice") else "")
        lines.append(
            f"| {r['step']} | {r['mode']} | {r.get('changes', r.get('rows', '-'))} | {r['rows_read']} | "
            f"{r['rows_merged']} | {r['seconds']:.2f} | {r.get('reconcile_seconds', 0):.2f}"
            f"{'' if keys is None else f' ({keys:.2f})'} | {_figure(r.get('task_cpu_seconds'))} | "
            f"{_figure(r.get('server_cpu_seconds'))} | {lag} | {wal} | {_figure(r.get('spill_bytes'), '{:,}')} | "
            f"{_figure(r.get('load_average'))} | {deletes} |")
    lines += ["", "## Where the time goes", "",
              "Seconds by phase of each run (the steps' own phases, over 0.01 s): CDC's extract `read` is waiting "
              "for the slot (the server's decoding and the transfer), `decode` the pgoutput messages into Python "
              "values, `stage` rows into Arrow and Parquet; cursor mode's extract `read` is the keyset query.", "",
              "| step | mode | phases (s) |", "|---|---|---|"]
    for r in records:
        if r["mode"] != "limit" and r.get("phases"):
            shown = ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items() if v >= 0.01)
            lines.append(f"| {r['step']} | {r['mode']} | {shown} |")
    by = {(r["step"], r["mode"]): r for r in records}
    lines += ["", "## Goals (issue 23)", "", "| goal | figure | met |", "|---|---|---|"]
    limit = by.get(("snapshot", "limit"))
    for mode in ("cursor", "cdc"):
        if limit and ("snapshot", mode) in by:
            ratio = by[("snapshot", mode)]["seconds"] / limit["seconds"]
            lines.append(f"| {mode} snapshot <= 1.5x the binary COPY pipe | {ratio:.2f}x | "
                         f"{'met' if ratio <= 1.5 else 'missed'} |")
    for step in sorted({s for s, m in by if s.startswith("updates")}, key=lambda s: int(s.split()[1])):
        cdc, cursor = by.get((step, "cdc")), by.get((step, "cursor"))
        if cdc and cursor:
            ratio = cdc["total_seconds"] / cursor["total_seconds"]
            goal = " (goal at 100 000: <= 0.5)" if step == "updates 100000" else ""
            lines.append(f"| {step}: CDC / cursor incl. reconcile and key check{goal} | {ratio:.2f} "
                         f"({cdc['total_seconds']:.2f} s / {cursor['total_seconds']:.2f} s) | "
                         f"{('met' if ratio <= 0.5 else 'missed') if goal else '-'} |")
            lag = cdc.get("lag_seconds")
            if lag is not None:
                lines.append(f"| {step}: CDC lag <= run time + 2 s | {lag:.1f} s against {cdc['seconds'] + 2:.1f} s | "
                             f"{'met' if lag <= cdc['seconds'] + 2 else 'missed'} |")
    for (step, mode), r in by.items():
        if mode == "cdc" and r.get("retained_wal_bytes") is not None and step != "snapshot":
            bound = r["wal_since_run_start_bytes"] + 16 * mib
            met = r["retained_wal_bytes"] <= bound and not r["spill_bytes"]
            lines.append(f"| {step}: retained WAL <= WAL since the run began + 16 MiB, spill 0 | "
                         f"{r['retained_wal_bytes'] / mib:,.1f} MiB against {bound / mib:,.1f} MiB; spill "
                         f"{r['spill_bytes']:,} B | {'met' if met else 'missed'} |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
