"""``make demo``: TPC-H through the real Airflow DAGs into the warehouse, reconciled, with a summary.

Steps: start (or reuse) PostgreSQL; generate TPC-H at ``$DEMO_SF`` (default 0.1); seed the source
with ``updated_at`` spread over the 24 hours before the last two-hour boundary; reset the
warehouse; backfill the 12 windows of each table with ``dag.test()``; apply refresh set 1 (inserts)
plus updates of 2 % of orders in many transactions; run the next window (the current interval,
run early; with ``--broken-row`` one order that fails the data-quality checks first); reconcile both
tables; print the summary and where the data-quality page and Data Docs are. Beside them, ``tpch.orders``
also runs as a CDC pipeline (``tpch_orders_cdc`` into ``tpch_cdc.orders``, docs/cdc.md): its first run
snapshots from a new replication slot, the next one applies the workload from the log, and the demo checks
that the RF2 deletes arrived in that run (``--no-cdc`` leaves it out; so does a source without
``wal_level=logical``). Exits 1 on drift or on a failed run. Run it as often as you like: each run starts
from a fresh source and warehouse.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import datetime
from typing import Any

from psycopg import sql
from tabulate import tabulate

from devkit import airflow_local as runner
from devkit import tpch
from devkit.embedded import ENV_VARS, ensure_connections
from devkit.paths import CONFIG, REPO
from warehouse_sync.config import load_config
from warehouse_sync.db.catalog import describe_pipeline_source
from warehouse_sync.db.connections import SOURCE_CONN_ID, WAREHOUSE_CONN_ID, connect_uri
from warehouse_sync.model import Window
from warehouse_sync.reconcile.compare import compare
from warehouse_sync.storage import reports_root, staging_root

AUDIT_SUMMARY = """
SELECT min(a.window_start) FILTER (WHERE a.step = 'plan') AS window_start,
       max(a.window_end) AS window_end,
       coalesce(sum(a.rows) FILTER (WHERE a.step = 'extract'), 0) AS extracted,
       coalesce(sum(a.rows) FILTER (WHERE a.step = 'load'), 0) AS merged,
       count(*) FILTER (WHERE a.step = 'extract') AS batches,
       sum(a.seconds) AS task_seconds,
       string_agg(a.status, '/' ORDER BY a.step) FILTER (WHERE a.step LIKE 'reconcile%%') AS reconcile,
       coalesce(max(a.status) FILTER (WHERE a.step = 'validate'), '-') AS checks
FROM warehouse_sync.audit a
WHERE a.pipeline = %(pipeline)s AND a.run_id = ANY(%(run_ids)s)
GROUP BY a.run_id
ORDER BY 2
"""


def reset_warehouse(warehouse: Any, pipelines: Any) -> None:
    """Drops the demo's target schemas and bookkeeping, its staged files and its Data Docs."""
    for schema in sorted({p.target.schema for p in pipelines} | {"warehouse_sync"}):
        warehouse.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    warehouse.commit()
    for p in pipelines:
        for files in (staging_root() / p.name, reports_root() / "data_docs" / p.name):
            if files.exists():
                files.rmdir(recursive=True)


# The CDC twin of tpch_orders: same table and expectations, another target schema (docs/cdc.md).
CDC_PIPELINE = {"name": "tpch_orders_cdc", "mode": "cdc", "source": "tpch.orders", "target": "tpch_cdc.orders"}
CDC_HEALTH = """
SELECT (d.detail->>'changes_read')::bigint, (d.detail->>'changes_applied')::bigint,
       (d.detail->>'lag_seconds')::float, (d.detail->>'freshest_lag_seconds')::float, d.bytes,
       (SELECT sum(seconds) FROM warehouse_sync.audit a WHERE a.run_id = d.run_id AND a.pipeline = d.pipeline
          AND a.step IN ('plan', 'extract', 'load'))
FROM warehouse_sync.audit d
WHERE d.pipeline = %(pipeline)s AND d.run_id = %(run_id)s AND d.step = 'cdc_slot'
  AND d.detail ? 'changes_read'  -- the load's row; the daily health task's of the same run id has none
ORDER BY d.id DESC LIMIT 1
"""


def with_cdc_pipeline(source: Any) -> Any:
    """Writes the shipped pipeline file plus the CDC twin of orders to ``.demo/pipelines.yaml``, points
    ``WAREHOUSE_SYNC_CONFIG`` at it and returns its path (``None``, and a note, when the source lacks
    ``wal_level=logical``)."""
    import yaml

    (level,) = source.execute("SHOW wal_level").fetchone()
    source.commit()
    if level != "logical":
        print(f"[demo] the source runs with wal_level={level}: the CDC pipeline is left out", flush=True)
        return None
    document = yaml.safe_load(CONFIG.read_text())
    orders = next(p for p in document["pipelines"] if p["source"] == "tpch.orders")
    document["pipelines"].append({**{k: v for k, v in orders.items() if k not in ("name", "target")}, **CDC_PIPELINE})
    path = REPO / ".demo" / "pipelines.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("# Written by tools/devkit/demo.py: include/pipelines.yaml plus a CDC pipeline.\n"
                    + yaml.safe_dump(document, sort_keys=False))
    os.environ["WAREHOUSE_SYNC_CONFIG"] = str(path)
    return path


# On your own servers (AIRFLOW_CONN_* set) the demo seeds and resets databases of its own, never yours.
DEMO_DATABASES = {SOURCE_CONN_ID: "ws_demo_source", WAREHOUSE_CONN_ID: "ws_demo_warehouse"}


def demo_connections() -> dict[str, str]:
    """The demo's connections: the embedded server's ``source``/``warehouse`` databases, or, when
    ``AIRFLOW_CONN_*`` name servers, ``ws_demo_source``/``ws_demo_warehouse`` created on them (the given
    databases are never written; ``devkit.embedded.own_database``)."""
    return ensure_connections(purpose="demo", own_databases=DEMO_DATABASES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sf", type=float, default=float(os.environ.get("DEMO_SF", "0.1")))
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--broken-row", action="store_true", default=os.environ.get("DEMO_BROKEN_ROW") == "1",
                        help="insert one order that fails the data-quality checks before the next window")
    parser.add_argument("--no-cdc", action="store_true", help="leave out the CDC pipeline of orders")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    started = time.monotonic()

    env = demo_connections()
    runner.airflow_environment()
    source = connect_uri(env[ENV_VARS[SOURCE_CONN_ID]], SOURCE_CONN_ID)
    warehouse = connect_uri(env[ENV_VARS[WAREHOUSE_CONN_ID]], WAREHOUSE_CONN_ID)
    config = load_config((None if args.no_cdc else with_cdc_pipeline(source)) or CONFIG)

    anchor = runner.window_with_time_left()  # the workload, written later, lands in the last window
    print(f"[demo] TPC-H SF {args.sf:g}: generating with dbgen …", flush=True)
    data = tpch.generate(args.sf)
    seeded = tpch.seed(source, data, anchor)
    reset_warehouse(warehouse, config.pipelines)
    print(f"[demo] source seeded: {seeded} rows, updated_at over [{anchor - 12 * runner.WINDOW}, {anchor})",
          flush=True)
    runner.migrate_metadata_db()
    dags = runner.load_dags()

    failures: list[str] = []
    run_ids: dict[str, list[str]] = {p.name: [] for p in config.pipelines}

    def run(window_end: datetime, label: str, broken_key: int | None = None, first: bool = False) -> None:
        for p in config.pipelines:
            if p.mode == "cdc" and label.startswith("backfill") and not first:
                continue  # a log has no past windows: its first run snapshotted, the next applies the changes
            t0 = time.monotonic()
            dag_run = runner.run_window(dags[p.dag_id], window_end)
            run_ids[p.name].append(dag_run.run_id)
            state = str(dag_run.state)
            print(f"[demo] {label:>9} {p.dag_id:<16} window ending {window_end:%Y-%m-%d %H:%M} "
                  f"-> {state} in {time.monotonic() - t0:.1f} s", flush=True)
            states = runner.task_states(dag_run)
            failed = sorted(t for t, s in states.items() if s != "success")
            if broken_key is not None and p.source == tpch.ORDERS and failed == ["validate"]:
                print(f"[demo]           as intended: validate failed on the broken order o_orderkey {broken_key}; "
                      "the rows are loaded and reconciled, the run is marked failed and alerted", flush=True)
            elif state != "success":
                failures.append(f"{p.dag_id} {window_end}: {states}")

    backfill_started = time.monotonic()
    for k in range(args.windows):
        run(anchor - (args.windows - 1 - k) * runner.WINDOW, f"backfill{k + 1:>2}", first=k == 0)
    backfill_s = time.monotonic() - backfill_started

    result = tpch.apply_workload(source, data, refresh_set=1, deletes=True)
    print(f"[demo] workload: inserted {result.inserted}, updated {result.updated}, hard-deleted {result.deleted} "
          f"in {result.transactions} transactions", flush=True)
    # The workload's rows carry updated_at = now(), inside the current, still open interval
    # [anchor, anchor + 2 h). The scheduler would run it when it closes; the demo runs it now, which
    # is exact here because nothing else writes to the source until it closes.
    broken_key = tpch.insert_broken_order(source) if args.broken_row else None
    if broken_key is not None:
        print(f"[demo] inserted a deliberately broken order: o_orderkey {broken_key} (status X, total price -1.00)",
              flush=True)
    incremental_started = time.monotonic()
    now = anchor + runner.WINDOW
    run(now, "next", broken_key)
    incremental_s = time.monotonic() - incremental_started
    for p in config.pipelines:  # the daily whole-table reconcile, run now
        dag_run = runner.run_window(dags[f"reconcile_{p.name}"], now)
        print(f"[demo] reconcile reconcile_{p.name:<13} -> {dag_run.state}", flush=True)
        if str(dag_run.state) != "success":
            failures.append(f"reconcile_{p.name}: {runner.task_states(dag_run)}")

    drift = False
    final_rows = []
    for p in config.pipelines:
        rows = warehouse.execute(AUDIT_SUMMARY, {"pipeline": p.name, "run_ids": run_ids[p.name]}).fetchall()
        warehouse.commit()
        print(f"\n{p.source} -> warehouse {p.target}")
        print(tabulate(
            [(f"{r[0]:%m-%d %H:%M}" if r[0] else "-inf", f"{r[1]:%m-%d %H:%M}", r[2], r[3], r[4],
              f"{r[5]:.2f}", r[6], r[7]) for r in rows],
            headers=["window start", "window end", "rows read", "rows merged", "batches", "task s",
                     "reconcile table/window", "checks"],
        ))
        columns = describe_pipeline_source(source, p)
        (table_cmp,) = compare(source, warehouse, p, columns, Window(None, now), full_table=False)
        drift |= not table_cmp.matches
        label = str(p.source) if p.mode == "cursor" else f"{p.source} (cdc -> {p.target})"
        final_rows.append((label, table_cmp.source.rows, table_cmp.warehouse.rows, table_cmp.source.checksum,
                           table_cmp.warehouse.checksum,
                           "in sync" if table_cmp.matches else "DRIFT"))
    deleted_at_source = tpch.deleted_keys(data, refresh_set=1)
    marked = {k for (k,) in warehouse.execute(
        "SELECT o_orderkey FROM tpch.orders WHERE _deleted_at IS NOT NULL").fetchall()}
    warehouse.commit()
    deletes_ok = marked == deleted_at_source
    print(f"\nRF2 hard deletes: {len(deleted_at_source)} orders deleted at source; the warehouse marks "
          f"{len(marked)} orders deleted ({'exactly those keys' if deletes_ok else 'NOT the same keys'})")
    drift |= not deletes_ok
    for p in (p for p in config.pipelines if p.mode == "cdc"):
        drift |= not report_cdc(warehouse, p, run_ids[p.name][-1], deleted_at_source)
    total_rows = sum(r[1] for r in final_rows)
    elapsed = time.monotonic() - started
    print("\nReconciliation (whole tables, source vs warehouse)")
    print(tabulate(final_rows, headers=["table", "source rows", "warehouse rows", "source checksum",
                                        "warehouse checksum", "result"]))
    print(f"\nDEMO_SF={args.sf:g}: {total_rows} rows; backfill of {args.windows} windows x "
          f"{len(config.pipelines)} tables {backfill_s:.1f} s; next window {incremental_s:.1f} s; "
          f"wall {elapsed:.1f} s ({total_rows / backfill_s:,.0f} rows/s through the backfill)")
    print(f"\nData quality: {reports_root() / 'data_docs'} holds each run's Great Expectations Data Docs;\n"
          "the page is http://localhost:8080/data-quality/ (also under Browse > Data quality) after `make airflow`.")
    if failures:
        print("FAILED RUNS:\n  " + "\n  ".join(failures), file=sys.stderr)
    if drift:
        print("DRIFT: source and warehouse differ (see the table above)", file=sys.stderr)
    return 1 if failures or drift else 0


def report_cdc(warehouse: Any, pipeline: Any, run_id: str, deleted_at_source: set[int]) -> bool:
    """Prints what the CDC pipeline's run after the workload applied and whether the RF2 deletes came
    with it (marked by that run, from the log, not by a reconcile); returns whether they did."""
    target = sql.Identifier(pipeline.target.schema, pipeline.target.name)
    marked = {k for (k,) in warehouse.execute(sql.SQL(
        "SELECT o_orderkey FROM {} WHERE _deleted_at IS NOT NULL AND _run_id = %s").format(target), (run_id,))}
    row = warehouse.execute(CDC_HEALTH, {"pipeline": pipeline.name, "run_id": run_id}).fetchone()
    warehouse.commit()
    ok = marked == deleted_at_source
    print(f"CDC ({pipeline.dag_id} -> {pipeline.target}): the first run after the workload marked {len(marked)} "
          f"orders deleted ({'exactly the RF2 keys, from the log' if ok else 'NOT the RF2 keys'})")
    if row:
        read, applied, lag, fresh, retained, seconds = row
        print(f"    {read} changes read, {applied} keys applied in {seconds:.1f} s (plan + extract + load); "
              f"lag: oldest change {lag:.1f} s, newest {fresh:.1f} s from source commit to warehouse commit; "
              f"slot retains {retained} bytes of WAL")
    return ok


if __name__ == "__main__":
    sys.exit(main())
