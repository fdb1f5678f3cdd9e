"""``make bench-cdc``: CDC mode against cursor mode on the same TPC-H change workloads.

On TPC-H orders at ``$BENCH_SF`` (default 1) in ``bench_source``/``bench_warehouse``, through the task
functions the DAG calls (plan + extract + load, no Airflow overhead, no reconcile):

1. the initial snapshot in each mode (cursor: keyset batches; cdc: one exported snapshot of a new slot);
2. per change volume (``$BENCH_CDC_VOLUMES``, default ``1000,10000,100000`` orders updated in
   transactions of 5 000): one run in each mode, timed, and CDC's lag (seconds from the oldest
   change's source commit to the warehouse commit) and retained WAL;
3. TPC-H refresh set 1 (RF1 inserts, updates of 1 % of orders, RF2 hard deletes: the workload of
   ``make bench``): one run in each mode, and whether the RF2 deletes arrived in that run.

Records (``mode`` in each) go to ``bench/results/cdc_sf<scale>.json`` and ``.md``.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from typing import Any

from psycopg import sql

import common
from devkit import airflow_local as runner
from devkit import tpch
from devkit.paths import REPO as REPO_ROOT
from warehouse_sync.bookkeeping.migrate import ensure_tables
from warehouse_sync.config import Pipeline
from warehouse_sync.inline import run_window
from warehouse_sync.model import RunStart, TableRef
from warehouse_sync.run import Run

STAGING = REPO_ROOT / ".bench" / "staging-cdc"
BASE = dict(source=TableRef("tpch", "orders"), primary_key=("o_orderkey",), cursor="updated_at",
            settle_timeout_seconds=5)
PIPELINES = {
    "cursor": Pipeline(name="bench_orders_cursor", target=TableRef("bench_cursor", "orders"), **BASE),
    "cdc": Pipeline(name="bench_orders_cdc", target=TableRef("bench_cdc", "orders"), mode="cdc", **BASE),
}
UPDATE_ORDERS = sql.SQL("UPDATE tpch.orders SET o_comment = left(md5(o_comment || %s), 40) "
                        "WHERE o_orderkey IN (SELECT o_orderkey FROM tpch.orders ORDER BY o_orderkey "
                        "OFFSET %s LIMIT %s)")


def reset(src: Any, wh: Any) -> None:
    """Empty targets and bookkeeping for both pipelines, no slot or publication, no staged files."""
    ensure_tables(wh)
    for p in PIPELINES.values():
        wh.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(p.target.schema)))
        for table in ("audit", "sync_state", "drift_history"):
            wh.execute(sql.SQL("DELETE FROM {} WHERE pipeline = %s").format(sql.Identifier("warehouse_sync", table)),
                       [p.name])
    wh.commit()
    slot = PIPELINES["cdc"].cdc_slot
    src.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    src.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(slot)))
    src.commit()


def run(src: Any, wh: Any, pipeline: Pipeline, label: str) -> dict[str, Any]:
    """plan -> extract (each batch) -> load, timed (seconds); CDC adds the slot's figures."""
    run_id = f"bench-{pipeline.mode}-{label}-{time.time_ns()}"
    started = time.monotonic()
    result = run_window(Run(pipeline, src, wh, run_id), RunStart(None, None, None, datetime.now(timezone.utc),
                                                                 manual=True), STAGING, reconcile=False)
    record = {"mode": pipeline.mode, "step": label, "seconds": round(time.monotonic() - started, 3),
              "rows_read": sum(e.rows for e in result.extracted), "rows_merged": result.loaded.merged,
              "run_id": run_id, "phases": result.phases}
    if "slot" in result.loaded.facts:
        slot = result.loaded.facts["slot"]
        record.update({k: slot[k] for k in ("lag_seconds", "freshest_lag_seconds", "retained_wal_bytes")})
    print(f"[bench-cdc] {label:<16} {pipeline.mode:<6} {record['seconds']:7.2f} s, {record['rows_read']} read, "
          f"{record['rows_merged']} merged"
          + (f", lag {record['lag_seconds']:.1f} s" if "lag_seconds" in record else ""),
          flush=True)
    return record


def main() -> int:
    scale = float(os.environ.get("BENCH_SF", "1"))
    volumes = [int(v) for v in os.environ.get("BENCH_CDC_VOLUMES", "1000,10000,100000").split(",")]
    src, wh = common.connect_both()
    (level,) = src.execute("SHOW wal_level").fetchone()  # type: ignore[misc]
    src.commit()
    if level != "logical":
        raise SystemExit(f"the benchmark source runs with wal_level={level}; CDC mode needs logical")
    anchor = runner.floor_window(datetime.now(timezone.utc))
    print(f"[bench-cdc] TPC-H SF {scale:g}: generating and seeding orders …", flush=True)
    reset(src, wh)
    data, counts = common.seed_source(src, scale, anchor, tables=(tpch.ORDERS, tpch.LINEITEM))
    records = [{**run(src, wh, p, "snapshot"), "rows": counts["orders"]} for p in PIPELINES.values()]
    for volume in volumes:
        volume = min(volume, counts["orders"])
        for offset in range(0, volume, 5000):
            src.execute(UPDATE_ORDERS, (f"v{volume}", offset, min(5000, volume - offset)))
            src.commit()
        records += [{**run(src, wh, p, f"updates {volume}"), "changes": volume} for p in PIPELINES.values()]
    workload = tpch.apply_workload(src, data, refresh_set=1, update_every=100, deletes=True)
    changes = workload.inserted["orders"] + workload.updated["orders"] + workload.deleted["orders"]
    deleted = tpch.deleted_keys(data, 1)
    for p in PIPELINES.values():
        record = {**run(src, wh, p, "tpch rf1+rf2"), "changes": changes}
        target = sql.Identifier(p.target.schema, p.target.name)
        (marked,) = wh.execute(sql.SQL("SELECT count(*) FROM {} WHERE _deleted_at IS NOT NULL AND o_orderkey = ANY(%s)")
                               .format(target), (sorted(deleted),)).fetchone()  # type: ignore[misc]
        wh.commit()
        record["rf2_deletes_in_run"] = f"{marked}/{len(deleted)}"
        records.append(record)
    reset(src, wh)  # never leave a slot retaining WAL behind
    write_results(records, scale)
    return 0


def write_results(records: list[dict[str, Any]], scale: float) -> None:
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for r in records:
        r.update({"scale": scale, "measured_at": stamp})
        r.pop("run_id", None)
    (common.RESULTS_DIR / f"cdc_sf{scale:g}.json").write_text(json.dumps(records, indent=2) + "\n")
    lines = [f"# CDC mode against cursor mode, TPC-H orders SF {scale:g} ({stamp})", "",
             "| step | mode | changes | rows read | rows merged | seconds (plan+extract+load) | lag s (oldest/newest) "
             "| retained WAL | RF2 deletes in the run |", "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lag = f"{r['lag_seconds']:.1f} / {r['freshest_lag_seconds']:.1f}" if "lag_seconds" in r else "-"
        wal = f"{r['retained_wal_bytes']:,} B" if "retained_wal_bytes" in r else "-"
        lines.append(f"| {r['step']} | {r['mode']} | {r.get('changes', r.get('rows', '-'))} | {r['rows_read']} | "
                     f"{r['rows_merged']} | {r['seconds']:.2f} | {lag} | {wal} | {r.get('rf2_deletes_in_run', '-')} |")
    (common.RESULTS_DIR / f"cdc_sf{scale:g}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
