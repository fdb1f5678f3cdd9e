"""``make bench-phases``: where the time of one snapshot goes, phase by phase, against the binary COPY pipe.

On TPC-H at ``$BENCH_SF`` (default 1) in ``bench_source``/``bench_warehouse`` (seeded as ``make bench``
seeds them), for each table of ``$BENCH_PHASES_TABLES`` (default ``"orders"``; ``"orders lineitem"``
for both), ``$BENCH_REPEATS`` times (default 1; medians are reported):

1. **limit**: the binary COPY pipe into an empty copy of the table with its primary key
   (:func:`sync_bench.measure_limit`), and the two halves of it alone: the source's binary COPY out
   read and dropped, and the same as CSV (what our extract asks for, but in one stream);
2. **plan**: ``describe_source`` and ``plan_batches`` (the real functions) for a snapshot window;
3. **extract**, every batch in turn through the real ``extract_batch``; the time inside it is split
   by wrapping the functions it calls: ``read_pages`` (each page's keyset ``COPY … (FORMAT csv)``
   out of the source), ``parse_csv_page`` (CSV -> Arrow) and ``ParquetWriter.write_table``/``close``
   (Parquet encode, snappy, file write); the rest (transaction, rename, clean-up) is "other";
4. **load** of the files into the empty target through the real ``load_files``, split the same way:
   ``ensure_target`` (CREATE TABLE with primary key and tombstone index), the Parquet read
   (``bulk_copy.file_batches``), pgpq's binary encoding, the binary ``COPY`` into the target (the rest of
   ``copy_files``: transfer, heap insert, primary-key maintenance), the lock and empty check,
   ``_ensure_cursor_index`` (the cursor index build), the commit, ``ANALYZE`` and its commit.

Each wrapper only measures: the real function runs unchanged. The sums are single-process, one batch
after another (in a DAG run, mapped extracts may overlap; the bench's task seconds are sums too).
Results: ``bench/results/snapshot_phases.json`` and the table between the markers of the section
"Snapshot: where the time goes" of ``bench/results/sync.md`` (the rest of the file is kept).
``$BENCH_PHASES_PROFILE=1`` also runs one extract batch and the load under ``cProfile`` and writes
the top functions to ``bench/results/snapshot_phases_profile.txt`` (first table only). Also measured:
Parquet write and read of the same rows with other codecs (in memory), and, unless
``$BENCH_PHASES_DAG=0``, the same snapshot through the real DAG (``dag.test()``, after one warm-up run).
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import os
import pstats
import sys
import time
import types
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pgpq
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
from warehouse_sync.model import TableRef, Window
from warehouse_sync.storage import as_path, staging_root
from warehouse_sync.sync import bulk_copy, extract, load
from warehouse_sync.sync.plan import plan_batches

STAGING = REPO_ROOT / ".bench" / "phases"
RESULTS_JSON = common.RESULTS_DIR / "snapshot_phases.json"
SYNC_MD = common.RESULTS_DIR / "sync.md"
HEADING = sync_report.PHASES_HEADING
BEGIN, END = "<!-- snapshot-phases:begin -->", "<!-- snapshot-phases:end -->"
WARMED_UP: list[bool] = []
PIPELINES = {"orders": "tpch_orders", "lineitem": "tpch_lineitem"}

# (phase key, label) in the order of a run; shares are of their sum, the snapshot's total.
PHASES = [
    ("plan_describe", "plan: describe_source"),
    ("plan_boundaries", "plan: keyset boundaries (plan_batches)"),
    ("extract_describe", "extract: describe_source (once per batch task)"),
    ("extract_copy_out", "extract: source COPY out, CSV, keyset pages"),
    ("extract_csv_to_arrow", "extract: CSV -> Arrow (parse_csv_page)"),
    ("extract_parquet_write", "extract: Parquet write (encode, snappy, file)"),
    ("extract_other", "extract: other (transaction, rename, clean-up)"),
    ("load_ensure_target", "load: CREATE target (primary key, tombstone index)"),
    ("load_lock_check", "load: LOCK and empty check"),
    ("load_parquet_read", "load: Parquet read (+ _run_id column)"),
    ("load_encode", "load: pgpq binary encode"),
    ("load_copy_in", "load: binary COPY into target (insert + primary key)"),
    ("load_cursor_index", "load: cursor index build"),
    ("load_commit", "load: commit"),
    ("load_analyze", "load: ANALYZE (+ its commit)"),
    ("load_other", "load: other"),
]


class Clock:
    """Seconds accumulated per phase key."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def phase(self, key: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] += time.perf_counter() - started

    def wrap(self, key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(key):
                return fn(*args, **kwargs)
        return timed

    def wrap_iter(self, key: str, fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        """Times each step of the generator ``fn`` returns (not the consumer's work between steps)."""
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            items = fn(*args, **kwargs)
            while True:
                with self.phase(key):
                    try:
                        item = next(items)
                    except StopIteration:
                        return
                yield item
        return timed


@contextlib.contextmanager
def patched(obj: Any, **attributes: Any) -> Iterator[None]:
    """Sets attributes of ``obj`` for the block, then puts the originals back."""
    own = vars(obj)
    saved = {name: own[name] for name in attributes if name in own}
    for name, value in attributes.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name in attributes:
            if name in saved:
                setattr(obj, name, saved[name])
            else:
                delattr(obj, name)


def timed_writer(clock: Clock) -> type:
    class TimedParquetWriter(pq.ParquetWriter):
        def write_table(self, *args: Any, **kwargs: Any) -> None:
            with clock.phase("extract_parquet_write"):
                super().write_table(*args, **kwargs)

        def close(self) -> None:
            with clock.phase("extract_parquet_write"):
                super().close()
    return TimedParquetWriter


def timed_encoder(clock: Clock, encoder_class: type) -> type:
    class TimedEncoder:
        def __init__(self, schema: Any) -> None:
            with clock.phase("load_encode"):
                self._encoder = encoder_class(schema)

        def write_header(self) -> bytes:
            with clock.phase("load_encode"):
                return self._encoder.write_header()

        def write_batch(self, batch: Any) -> bytes:
            with clock.phase("load_encode"):
                return self._encoder.write_batch(batch)

        def finish(self) -> bytes:
            with clock.phase("load_encode"):
                return self._encoder.finish()
    return TimedEncoder


def instrument_connection(conn: Any, clock: Clock) -> contextlib.ExitStack:
    """Times the commit of ``conn``'s outermost ``transaction()`` block and its ``ANALYZE`` (with the commit after)."""
    depth = [0]
    analyzing = [False]
    original_transaction, original_execute, original_commit = conn.transaction, conn.execute, conn.commit

    @contextlib.contextmanager
    def transaction(*args: Any, **kwargs: Any) -> Iterator[Any]:
        block = original_transaction(*args, **kwargs)
        tx = block.__enter__()
        depth[0] += 1
        try:
            yield tx
        except BaseException:
            depth[0] -= 1
            if not block.__exit__(*sys.exc_info()):
                raise
        else:
            depth[0] -= 1
            with clock.phase("load_commit" if depth[0] == 0 else "load_savepoint"):
                block.__exit__(None, None, None)

    def execute(query: Any, *args: Any, **kwargs: Any) -> Any:
        text = query if isinstance(query, str) else query.as_string(conn)
        if text.lstrip().upper().startswith("ANALYZE"):
            analyzing[0] = True
            with clock.phase("load_analyze"):
                return original_execute(query, *args, **kwargs)
        return original_execute(query, *args, **kwargs)

    def commit() -> None:
        if analyzing[0]:
            analyzing[0] = False
            with clock.phase("load_analyze"):
                return original_commit()
        return original_commit()

    stack = contextlib.ExitStack()
    stack.enter_context(patched(conn, transaction=transaction, execute=execute, commit=commit))
    return stack


def run_snapshot(src: Any, wh: Any, pipeline: Any, window_end: datetime, clock: Clock) -> dict[str, Any]:
    """One snapshot of ``pipeline`` (plan, every extract batch, load into the empty target), timed by phase."""
    sync_bench.reset_ours(wh, pipeline)
    window = Window(None, window_end)
    root = staging_root()  # an ObjectStoragePath, as in the extract task
    with clock.phase("plan_describe"):
        describe_source(src, pipeline.source, pipeline.primary_key, pipeline.cursor)
    with clock.phase("plan_boundaries"):
        batches = plan_batches(src, pipeline, window)
    files, rows = [], 0
    with patched(extract, read_pages=clock.wrap_iter("extract_read_pages", extract.read_pages),
                 parse_csv_page=clock.wrap("extract_csv_to_arrow", extract.parse_csv_page),
                 pq=types.SimpleNamespace(ParquetWriter=timed_writer(clock))):
        for batch in batches:
            with clock.phase("extract_describe"):
                columns = describe_source(src, pipeline.source, pipeline.primary_key, pipeline.cursor)
            with clock.phase("extract_batch"):
                written = extract.extract_batch(src, pipeline, columns, window, batch, root)
            files.append(written.path)
            rows += written.rows
    with patched(load, ensure_target=clock.wrap("load_ensure_target", load.ensure_target),
                 _copy_into_empty=clock.wrap("load_copy_into_empty", load._copy_into_empty),
                 copy_files=clock.wrap("load_copy_files", load.copy_files),
                 _ensure_cursor_index=clock.wrap("load_cursor_index", load._ensure_cursor_index)), \
            patched(bulk_copy, file_batches=clock.wrap_iter("load_parquet_read", bulk_copy.file_batches)), \
            patched(pgpq, ArrowToPostgresBinaryEncoder=timed_encoder(clock, pgpq.ArrowToPostgresBinaryEncoder)), \
            instrument_connection(wh, clock):
        with clock.phase("load_files"):
            result = load.load_files(wh, pipeline, columns, [as_path(p) for p in files], "phases", snapshot=True,
                                     source=src)
    if result.merged != rows:
        raise RuntimeError(f"{pipeline.target}: extracted {rows} rows but loaded {result.merged}")
    return {"rows": rows, "batches": len(batches), "first_file": files[0], "files_bytes": sum(as_path(p).stat().st_size for p in files)}


def phase_seconds(raw: dict[str, float]) -> dict[str, float]:
    """The phases of :data:`PHASES` from the raw timers (the "copy out" and "other" rows are differences)."""
    s = defaultdict(float, raw)
    phases = {key: s[key] for key, _ in PHASES}
    phases["extract_copy_out"] = s["extract_read_pages"] - s["extract_csv_to_arrow"]
    phases["extract_other"] = (s["extract_batch"] - s["extract_read_pages"] - s["extract_parquet_write"])
    phases["load_copy_in"] = s["load_copy_files"] - s["load_parquet_read"] - s["load_encode"]
    phases["load_lock_check"] = s["load_copy_into_empty"] - s["load_copy_files"] - s["load_savepoint"]
    phases["load_other"] = (s["load_files"] - s["load_ensure_target"] - s["load_copy_into_empty"]
                            - s["load_cursor_index"] - s["load_commit"] - s["load_analyze"])
    return {key: max(value, 0.0) for key, value in phases.items()}  # a residue of -0.00 is timer rounding


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
    paths = [first.path] + [extract.extract_batch(src, pipeline, columns, window, b, staging_root()).path
                            for b in batches[1:]]
    profiler = cProfile.Profile()
    profiler.enable()
    load.load_files(wh, pipeline, columns, [as_path(p) for p in paths], "phases-profile", snapshot=True, source=src)
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
    load.load_files(wh, pipeline, columns, [as_path(written.path)], "phases-warm-up", snapshot=True, source=src)


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
        clock = Clock()
        started = time.perf_counter()
        shape = run_snapshot(src, wh, pipeline, window_end, clock)
        wall = time.perf_counter() - started
        phases = phase_seconds(clock.seconds)
        shape.update(parquet_codecs(shape.pop("first_file"), shape["rows"]))
        runs.append({"limit_s": limit, "source_out_binary_s": out_binary, "source_out_csv_s": out_csv,
                     "wall_s": wall, "total_s": sum(phases.values()), **shape,
                     **{f"{k}_s": v for k, v in phases.items()}})
        print(f"[phases] {name} run {repeat + 1}: snapshot {sum(phases.values()):.2f} s (wall {wall:.2f} s), "
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
             + " (limit: median). One snapshot through our real functions (plan_batches, extract_batch per batch, load_files into "
             "the empty target), one process, batches one after another; each phase timed by wrapping the function "
             "that does it. Share: of the snapshot's total.", "",
             "| phase | " + " | ".join(f"{n} (s) | share" for n in names) + " |",
             "|---|" + "---:|---:|" * len(names)]
    totals = {n: sum(results[n][f"{k}_s"] for k, _ in PHASES) for n in names}
    for key, label in PHASES:
        lines.append(f"| {label} | " + " | ".join(
            f"{results[n][f'{key}_s']:.2f} | {results[n][f'{key}_s'] / totals[n]:.0%}" for n in names) + " |")
    group = {"plan": "plan", "extract": "extract", "load": "load"}
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
        lines.append("| the same snapshot through the DAG (dag.test()): plan + extract + load task seconds | " + " | ".join(
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
