"""``make bench-reconcile``: our locate (checksum bisection) against reladiff 0.6, same data, same server.

TPC-H ``orders`` at ``$BENCH_SF`` (default 1: 1.5 M rows, all 10 columns) in ``bench_source``, and
a copy as our warehouse target in ``bench_warehouse``. Two cases, each ``$BENCH_REPEATS`` times
(default 3, medians reported):

* **identical**: the warehouse is an exact copy;
* **scattered**: 21 differences spread over the key range: 7 rows deleted from the warehouse
  (missing), 7 deleted at the source (extra), 7 changed in the warehouse (text with a quote, a tab
  and non-ASCII, a price off by one cent, a status, a date).

Ours is :func:`warehouse_sync.reconcile.locate.locate` in this process; reladiff is its CLI (``--json``, all
columns, default bisection settings, ``-j 1`` and ``-j 2`` threads per database, the faster one
counts) in its own virtualenv. Both must report exactly the injected key sets. Results go to
``bench/results/reconcile.md`` and ``bench/results/reconcile.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from psycopg import sql

import common
from devkit import airflow_local as runner
from devkit import tpch
from devkit.paths import CONFIG
from warehouse_sync.config import load_config
from warehouse_sync.db.catalog import describe_source
from warehouse_sync.db.statements import table_ident
from warehouse_sync.model import Window
from warehouse_sync.reconcile.locate import locate
from warehouse_sync.target.ddl import ensure_target

CHANGES = [  # (column, SQL expression) applied to one warehouse row each
    ("o_comment", "'it''s\ta ü-comment, \"quoted\"'"),
    ("o_comment", "o_comment || ' '"),
    ("o_totalprice", "o_totalprice + 0.01"),
    ("o_totalprice", "o_totalprice - 0.01"),
    ("o_orderstatus", "CASE o_orderstatus WHEN 'F' THEN 'O' ELSE 'F' END"),
    ("o_orderdate", "o_orderdate + 1"),
    ("o_clerk", "'Clerk#999999999'"),
]


def _keys(src: Any, count: int) -> list[int]:
    """``count`` order keys spread evenly over the table's key order."""
    (total,) = src.execute("SELECT count(*) FROM tpch.orders").fetchone()
    step = total // (count + 1)
    rows = src.execute(
        "SELECT o_orderkey FROM (SELECT o_orderkey, row_number() OVER (ORDER BY o_orderkey) AS n FROM tpch.orders) s"
        " WHERE n %% %(step)s = 0 ORDER BY 1 LIMIT %(count)s", {"step": step, "count": count}).fetchall()
    src.commit()
    return [r[0] for r in rows]


def inject(src: Any, wh: Any, target: Any) -> dict[str, set[tuple]]:
    """Applies the scattered differences; returns the expected key sets per kind."""
    keys = _keys(src, 21)
    missing, extra, changed = keys[0::3], keys[1::3], keys[2::3]
    wh.execute(sql.SQL("DELETE FROM {} WHERE o_orderkey = ANY(%s)").format(table_ident(target)), [missing])
    for key, (column, expression) in zip(changed, CHANGES):
        wh.execute(sql.SQL("UPDATE {} SET {} = {} WHERE o_orderkey = %s").format(
            table_ident(target), sql.Identifier(column), sql.SQL(expression)), [key])
    wh.commit()
    src.execute("DELETE FROM tpch.orders WHERE o_orderkey = ANY(%s)", [extra])
    src.commit()
    return {"missing": {(k,) for k in missing}, "extra": {(k,) for k in extra}, "changed": {(k,) for k in changed}}


def run_reladiff(bin_dir: Path, src_uri: str, wh_uri: str, names: list[str], threads: int) -> tuple[dict, float]:
    """One reladiff run; returns its key sets per kind and its wall seconds (process start to exit)."""
    command = [str(bin_dir / "reladiff"), src_uri, "tpch.orders", wh_uri, "tpch.orders", "-k", "o_orderkey",
               *[arg for n in names if n != "o_orderkey" for arg in ("-c", n)], "--json", "-j", str(threads)]
    env = {**os.environ, "COLUMNS": "1000000"}  # its console wraps --json lines at the terminal width
    done, seconds = common.timed(lambda: subprocess.run(command, capture_output=True, text=True, env=env))
    if done.returncode != 0:
        raise RuntimeError(f"reladiff failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    minus, plus = set(), set()
    for line in done.stdout.splitlines():
        if line.strip():
            sign, row = json.loads(line)
            (minus if sign == "-" else plus).add((int(row[0]),))
    return {"missing": minus - plus, "extra": plus - minus, "changed": minus & plus}, seconds


def run_ours(src: Any, wh: Any, pipeline: Any, columns: Any, as_of: datetime) -> tuple[dict, float, int]:
    result, seconds = common.timed(lambda: locate(src, wh, pipeline, columns, Window(None, as_of)))
    found = {"missing": set(result.missing), "extra": set(result.extra), "changed": set(result.changed)}
    return found, seconds, result.segments


def main() -> int:
    scale = float(os.environ.get("BENCH_SF", "1"))
    src_uri, wh_uri = common.bench_uris()
    src, wh = common.connect_both()
    anchor = runner.floor_window(datetime.now(timezone.utc))
    pipeline = load_config(CONFIG).pipeline("tpch_orders")
    print(f"[bench-reconcile] TPC-H SF {scale:g} orders: generating and seeding the source …", flush=True)
    _, counts = common.seed_source(src, scale, anchor, tables=(tpch.ORDERS,))
    columns = describe_source(src, pipeline.source, pipeline.primary_key, pipeline.cursor)
    names = [c.name for c in columns]
    wh.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table_ident(pipeline.target)))
    wh.commit()
    ensure_target(wh, pipeline, columns)
    rows, copy_s = common.fill_by_copy(src, wh, pipeline.source, pipeline.target, names)
    wh.execute(sql.SQL("ANALYZE {}").format(table_ident(pipeline.target)))
    wh.commit()
    print(f"[bench-reconcile] {rows} rows copied to the warehouse in {copy_s:.1f} s", flush=True)
    bin_dir = common.peer_venv("reladiff")

    records = []
    for case in ("identical", "scattered"):
        expected = {"missing": set(), "extra": set(), "changed": set()}
        if case == "scattered":
            expected = inject(src, wh, pipeline.target)
        ours_s, rel_s = [], {1: [], 2: []}
        agree = True
        segments = 0
        for i in range(common.repeats()):
            found, seconds, segments = run_ours(src, wh, pipeline, columns, anchor)
            ours_s.append(seconds)
            agree &= found == expected
            for threads in rel_s:
                rel_found, seconds = run_reladiff(bin_dir, src_uri, wh_uri, names, threads)
                rel_s[threads].append(seconds)
                agree &= rel_found == expected
            print(f"[bench-reconcile] {case} run {i + 1}: ours {ours_s[-1]:.2f} s ({segments} segments), "
                  f"reladiff -j1 {rel_s[1][-1]:.2f} s, -j2 {rel_s[2][-1]:.2f} s, key sets agree: {agree}",
                  flush=True)
        best_threads = min(rel_s, key=lambda t: common.median(rel_s[t]))
        record = {
            "table": str(pipeline.source), "case": case, "rows": counts["orders"],
            "differences": sum(len(v) for v in expected.values()),
            "ours_s": round(common.median(ours_s), 3),
            "reladiff_s": round(common.median(rel_s[best_threads]), 3), "reladiff_threads": best_threads,
            "reladiff_j1_s": round(common.median(rel_s[1]), 3), "reladiff_j2_s": round(common.median(rel_s[2]), 3),
            "segments": segments, "same_keys": agree, "runs": common.repeats(),
        }
        record["ratio"] = round(record["ours_s"] / record["reladiff_s"], 3)
        records.append(record)
    write_results(records, scale)
    return 0 if all(r["same_keys"] for r in records) else 1  # a wrong key set fails; the ratio is reported


def write_results(records: list[dict], scale: float) -> None:
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (common.RESULTS_DIR / "reconcile.json").write_text(json.dumps(records, indent=2) + "\n")
    lines = [
        f"# Reconcile benchmark: TPC-H SF {scale:g} orders, ours vs reladiff 0.6",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; medians of {records[0]['runs']} runs; "
        "same PostgreSQL server, source and warehouse databases.",
        "",
        "| case | rows | differences | ours (s) | reladiff (s) | ours / reladiff | same key sets |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        lines.append(f"| {r['case']} | {r['rows']:,} | {r['differences']} | {r['ours_s']:.2f} | "
                     f"{r['reladiff_s']:.2f} (-j {r['reladiff_threads']}) | {r['ratio']:.2f} | "
                     f"{'yes' if r['same_keys'] else 'NO'} |")
    text = "\n".join(lines) + "\n"
    (common.RESULTS_DIR / "reconcile.md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    sys.exit(main())
