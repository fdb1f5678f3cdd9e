"""The sync benchmark's report: ``latest.json``, ``sync.md``, ``sync.png`` (snapshot) and
``sync_scale.png`` (incremental run time against table size for the same change) under ``bench/results``."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any

import common

Results = dict[tuple[str, str, float], dict[str, Any]]
# The section ``make bench-phases`` writes (bench/snapshot_phases.py): kept when ``make bench`` rewrites sync.md.
PHASES_HEADING = "## Snapshot: where the time goes"


def phases_section(text: str) -> str:
    """The "Snapshot: where the time goes" section of ``text`` (up to the next ``## `` heading), or ``""``."""
    at = text.find(PHASES_HEADING)
    if at < 0:
        return ""
    end = text.find("\n## ", at + len(PHASES_HEADING))
    return text[at:] if end < 0 else text[at:end + 1]


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}"


def records(results: Results) -> list[dict[str, Any]]:
    """One JSON record per (table, step, sf): the issue's fields, then ours' breakdown."""
    out = []
    for (table, step, scale), r in results.items():
        rounded = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
        out.append({"table": table, "step": step, "sf": scale, "rows": r["rows"], "changed_rows": r["changed_rows"],
                    "ours_s": rounded["ours_s"], "dlt_s": rounded.get("dlt_s"), "limit_s": rounded.get("limit_s"),
                    "peak_rss_mib": round(r["peak_rss_mib"], 1),
                    **{k: v for k, v in rounded.items() if k.startswith("ours_") or k.startswith("dlt_")
                       or k == "window_rows"}})
    return out


def write_results(results: Results, scales: list[float], backend: str | None, small_rss: dict | None, repeats: int,
                  workload: dict[str, int], measured: datetime | None = None) -> None:
    """Writes the JSON records, the Markdown tables and both charts (``measured``: when, default now, UTC)."""
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (common.RESULTS_DIR / "latest.json").write_text(json.dumps(records(results), indent=2) + "\n")
    first = scales[0]
    lines = [f"# Sync benchmark: TPC-H SF {', '.join(f'{s:g}' for s in scales)}; ours vs the limit vs dlt "
             f"({backend} backend)", "",
             f"Measured {measured or datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores "
             "(shared with other "
             f"work: noisy). Snapshots at SF {first:g}: medians of {repeats} runs; at other scale factors one run. "
             "Incremental: one run per tool and scale factor, after the same change at every scale factor: "
             f"{workload['orders']:,} orders inserted and {workload['orders']:,} deleted (TPC-H RF1/RF2, with their "
             f"lineitems), about {workload['updated_orders']:,} orders and their lineitems updated.", "",
             "## Snapshot", "",
             "ours (s): plan + extract + load. limit: binary COPY pipe into an empty table with its primary key.", "",
             "| table | SF | rows | ours (s) | plan / extract / load (s) | rows/s | limit (s) | ours / limit | dlt (s) "
             "| dlt / ours | Airflow overhead (s) | reconcile + validate (s) | extract task peak RSS (MiB) "
             "| dlt peak RSS (MiB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (table, step, scale), r in results.items():
        if step != "snapshot":
            continue
        lines.append(
            f"| {table} | {scale:g} | {r['rows']:,} | {r['ours_s']:.2f} | {r['ours_plan_s']:.2f} / "
            f"{r['ours_extract_s']:.2f} / {r['ours_load_s']:.2f} | {r['rows'] / max(r['ours_s'], 1e-9):,.0f} | "
            f"{_num(r['limit_s'])} | {_ratio(r['ours_s'], r['limit_s'])} | {_num(r.get('dlt_s'))} | "
            f"{_ratio(r.get('dlt_s'), r['ours_s'])} | {r['ours_airflow_s']:.2f} | "
            f"{r['ours_reconcile_s'] + r['ours_validate_s']:.2f} | {r['peak_rss_mib']:.0f} | "
            f"{_num(r.get('dlt_rss_mib'), 0)} |")
    if small_rss:
        lines += ["", f"Extract task peak RSS at SF 0.1 vs SF {first:g}: " + "; ".join(
            f"{t}: {small_rss[t]:.0f} MiB vs {results[(t, 'snapshot', first)]['peak_rss_mib']:.0f} MiB "
            f"({results[(t, 'snapshot', first)]['peak_rss_mib'] / small_rss[t] - 1:+.0%})" for t in small_rss)]
    lines += ["", "## Incremental window: the same change at every scale factor", "",
              "ours (s): every task of the run (plan, extract, load, reconcile, validate), Airflow's own time apart. "
              "limit (s): the window's rows read through the source's cursor index, binary-COPYed into a temporary "
              "table and merged into the target, nothing else. dlt finds no deletes.", "",
              "| table | SF | table rows | changed rows | window rows | ours (s) | plan + extract + load (s) "
              "| reconcile (s) (window check / key check) | validate (s) | limit (s) | ours / limit | dlt (s) "
              "| ours / dlt | ours / ours at "
              f"SF {first:g} | extract task peak RSS (MiB) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (table, step, scale), r in results.items():
        if step != "incremental":
            continue
        base = results.get((table, "incremental", first), r)
        lines.append(
            f"| {table} | {scale:g} | {r['rows']:,} | {r['changed_rows']:,} | {r['window_rows']:,} | "
            f"{r['ours_s']:.2f} | {r['ours_move_s']:.2f} | {r['ours_reconcile_s']:.2f} "
            f"({_num(r.get('ours_reconcile_window_s'))} / {_num(r.get('ours_reconcile_keys_s'))}) | "
            f"{r['ours_validate_s']:.2f} | "
            f"{_num(r['limit_s'])} | {_ratio(r['ours_s'], r['limit_s'])} | {_num(r.get('dlt_s'))} | "
            f"{_ratio(r['ours_s'], r.get('dlt_s'))} | {_ratio(r['ours_s'], base['ours_s'])} | "
            f"{r['peak_rss_mib']:.0f} |")
    lines += ["", "![incremental run time against table size](sync_scale.png)", ""] + goals(results, scales)
    text = "\n".join(lines) + "\n"
    path = common.RESULTS_DIR / "sync.md"
    kept = phases_section(path.read_text()) if path.exists() else ""
    path.write_text(text + ("\n" + kept if kept else ""))
    _snapshot_chart(results, first)
    _scale_chart(results)
    print("\n" + text)


def goals(results: Results, scales: list[float]) -> list[str]:
    """Issue 22's goals read off one run: snapshot against the limit at the first and the largest scale
    factor, the incremental run against the limit at the first, and the largest against the first."""
    first, largest = scales[0], max(scales)
    lines = ["## Goals (issue 22)", "", "| goal | table | figure | |", "|---|---|---:|---|"]

    def row(goal: str, table: str, value: float | None, bound: float, detail: str) -> None:
        verdict = "–" if value is None else ("met" if value <= bound else "missed")
        lines.append(f"| {goal} | {table} | {_num(value)} ({detail}) | {verdict} |")

    tables = sorted({t for t, _, _ in results})
    for scale in sorted({first, largest}):
        for table in tables:
            r = results.get((table, "snapshot", scale))
            if r and r.get("limit_s"):
                row(f"snapshot <= 1.5x the binary COPY pipe, SF {scale:g}", table, r["ours_s"] / r["limit_s"], 1.5,
                    f"{r['ours_s']:.1f} s / {r['limit_s']:.1f} s")
    for table in tables:
        r = results.get((table, "incremental", first))
        if r and r.get("limit_s"):
            row(f"incremental run, all tasks, <= 2x the limit, SF {first:g}", table, r["ours_s"] / r["limit_s"], 2,
                f"{r['ours_s']:.2f} s / {r['limit_s']:.2f} s")
    if largest != first:
        for table in tables:
            small, big = results.get((table, "incremental", first)), results.get((table, "incremental", largest))
            if small and big:
                row(f"incremental run, SF {largest:g} / SF {first:g} <= 2", table, big["ours_s"] / small["ours_s"], 2,
                    f"{big['ours_s']:.2f} s / {small['ours_s']:.2f} s")
    return lines + [""]


def _snapshot_chart(results: Results, scale: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {(t, s): r for (t, s, sf), r in results.items() if sf == scale}
    labels = [f"{t.split('.')[1]}\n{s}" for t, s in shown]
    series = {"limit": [r["limit_s"] for r in shown.values()],
              "ours (snapshot: plan + extract + load; incremental: all tasks)": [r["ours_s"] for r in shown.values()],
              "dlt": [r.get("dlt_s") for r in shown.values()]}
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - 1) * width for x, v in enumerate(values) if v is not None]
        bars = ax.bar(xs, [v for v in values if v is not None], width, label=name)
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in values if v is not None], fontsize=8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("seconds (lower is better)")
    ax.set_title(f"TPC-H SF {scale:g}: PostgreSQL to PostgreSQL")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(common.RESULTS_DIR / "sync.png", dpi=110)


def _scale_chart(results: Results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = sorted({t for t, s, _ in results if s == "incremental"})
    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 4), squeeze=False)
    for ax, table in zip(axes[0], tables):
        runs = sorted(((sf, r) for (t, s, sf), r in results.items() if t == table and s == "incremental"),
                      key=lambda item: item[1]["rows"])
        sizes = [r["rows"] / 1e6 for _, r in runs]
        for label, key in (("ours (all tasks)", "ours_s"), ("ours: plan + extract + load", "ours_move_s"),
                           ("ours: reconcile", "ours_reconcile_s"),
                           ("ours: reconcile's key check", "ours_reconcile_keys_s"),
                           ("ours: validate", "ours_validate_s"), ("dlt", "dlt_s"), ("limit", "limit_s")):
            points = [(x, r.get(key)) for x, (_, r) in zip(sizes, runs) if r.get(key) is not None]
            ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=label)
        ax.set_xlabel("table rows (millions)")
        ax.set_ylabel("seconds")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{table}: incremental window, per task")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(common.RESULTS_DIR / "sync_scale.png", dpi=110)
