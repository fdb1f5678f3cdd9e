"""Shared parts of the benchmarks: databases, TPC-H data, peer virtualenvs, timing.

The benchmarks use their own databases (``bench_source`` and ``bench_warehouse`` on the embedded
PostgreSQL, or the servers of ``AIRFLOW_CONN_SOURCE_POSTGRES`` / ``AIRFLOW_CONN_WAREHOUSE_POSTGRES``
when both are set), so they never touch the demo's or the tests' data. Peers (reladiff, dlt) run
in their own virtualenvs under ``.bench/venvs/``, installed from the pinned files in
``bench/peers/``, so their dependencies never meet ours.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

import psycopg
from psycopg import sql

from devkit import tpch
from devkit.embedded import ENV_VARS, ensure_connections
from devkit.paths import REPO as REPO_ROOT
from warehouse_sync.db.connections import SOURCE_CONN_ID, WAREHOUSE_CONN_ID, connect_uri
from warehouse_sync.db.statements import table_ident
from warehouse_sync.model import TableRef

BENCH_DIR = REPO_ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
VENVS_DIR = REPO_ROOT / ".bench" / "venvs"
BENCH_DATABASES = {SOURCE_CONN_ID: "bench_source", WAREHOUSE_CONN_ID: "bench_warehouse"}


def bench_uris() -> tuple[str, str]:
    """Source and warehouse URIs for the benchmark: its own ``bench_*`` databases, on the embedded server or,
    when ``AIRFLOW_CONN_*`` name servers, created (and marked) on those (``devkit.embedded.own_database``).

    Also sets both ``AIRFLOW_CONN_*`` variables, so the DAG tasks use the same databases.
    """
    env = ensure_connections(BENCH_DATABASES, purpose="bench")
    return env[ENV_VARS[SOURCE_CONN_ID]], env[ENV_VARS[WAREHOUSE_CONN_ID]]


def connect_both() -> tuple[psycopg.Connection, psycopg.Connection]:
    """Open connections to the benchmark's source and warehouse."""
    src_uri, wh_uri = bench_uris()
    return connect_uri(src_uri, SOURCE_CONN_ID), connect_uri(wh_uri, WAREHOUSE_CONN_ID)


def seed_source(conn: psycopg.Connection, scale: float, anchor: datetime,
                tables: Iterable[TableRef] = (tpch.ORDERS, tpch.LINEITEM)) -> tuple[Path, dict[str, int]]:
    """Generates TPC-H at ``scale`` (cached under ``.tpch/``) and (re)creates the source tables.

    Returns:
        The dbgen output folder and the rows loaded per table name.
    """
    data = tpch.generate(scale)
    return data, tpch.seed(conn, data, anchor, tables=tuple(tables))


def copy_binary(source: psycopg.Connection, target: psycopg.Connection, select: sql.Composable,
                copy_in: sql.Composable) -> int:
    """The physical limit of a move: ``COPY (select) TO STDOUT (FORMAT binary)`` piped into
    ``COPY … FROM STDIN (FORMAT binary)``, one stream, no parsing on the way.

    Returns:
        Rows copied (as reported by the receiving ``COPY``).
    """
    with source.cursor() as out_cur, target.cursor() as in_cur:
        with out_cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(select)) as copy_out, \
                in_cur.copy(copy_in) as copy_in_stream:
            for data in copy_out:
                copy_in_stream.write(data)
        rows = in_cur.rowcount
    target.commit()
    source.commit()
    return rows


def fill_by_copy(source: psycopg.Connection, target: psycopg.Connection, source_table: TableRef,
                 target_table: TableRef, names: list[str]) -> tuple[int, float]:
    """Copies columns ``names`` of ``source_table`` into the existing ``target_table`` with
    :func:`copy_binary`.

    Returns:
        Rows copied and wall seconds of the copy.
    """
    columns = sql.SQL(", ").join(map(sql.Identifier, names))
    started = time.perf_counter()
    rows = copy_binary(
        source, target,
        sql.SQL("SELECT {} FROM {}").format(columns, table_ident(source_table)),
        sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(table_ident(target_table), columns),
    )
    return rows, time.perf_counter() - started


def peer_venv(name: str) -> Path:
    """The virtualenv of a peer tool, created from ``bench/peers/<name>.txt`` on first use.

    Returns:
        The venv's ``bin`` folder.

    Raises:
        subprocess.CalledProcessError: The install failed.
    """
    venv = VENVS_DIR / name
    lock = BENCH_DIR / "peers" / f"{name}.txt"
    marker = venv / ".installed"
    if not marker.exists() or marker.read_text() != lock.read_text():
        print(f"[bench] installing {name} into {venv} from {lock.relative_to(REPO_ROOT)} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        uv = Path(sys.executable).with_name("uv")
        subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                        "-r", str(lock)], check=True)
        marker.write_text(lock.read_text())
    return venv / "bin"


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Runs ``fn`` and returns (its result, wall seconds)."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def median(values: Iterable[float]) -> float:
    """Median of the repeated measurements (the machine is noisy: quote medians)."""
    return statistics.median(list(values))


def scales() -> list[float]:
    """TPC-H scale factors of the benchmark, ``$BENCH_SCALES`` (default ``"1 3"``; ``$BENCH_SF`` alone,
    the older setting, means that one scale factor)."""
    text = os.environ.get("BENCH_SCALES") or os.environ.get("BENCH_SF") or "1 3"
    return [float(x) for x in text.split()]


def vacuum(conn: psycopg.Connection, table: TableRef) -> None:
    """``VACUUM (ANALYZE)`` of ``table`` (outside a transaction): sets its visibility map, as autovacuum would."""
    conn.commit()
    conn.autocommit = True
    try:
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(table_ident(table)))
    finally:
        conn.autocommit = False


def merge_statement(target: TableRef, columns: list[str], primary_key: tuple[str, ...], staging: str) -> sql.Composed:
    """A plain upsert of ``staging`` into ``target`` (no version guard): the merge of the incremental limit."""
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    updates = sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
                                 for c in columns if c not in primary_key)
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) DO UPDATE SET {}").format(
        table_ident(target), names, names, sql.Identifier(staging),
        sql.SQL(", ").join(map(sql.Identifier, primary_key)), updates)


def peer_repeats(repeats_: int) -> int:
    """Runs per peer snapshot, ``$BENCH_PEER_REPEATS`` (default 1), at most ``repeats_``."""
    return max(1, min(repeats_, int(os.environ.get("BENCH_PEER_REPEATS", "1"))))


def peer_max_rows() -> int:
    """Tables with more rows than ``$BENCH_PEER_MAX_ROWS`` (default 10 000 000) get no peer run."""
    return int(os.environ.get("BENCH_PEER_MAX_ROWS", "10000000"))


def repeats() -> int:
    """Runs per measurement, ``$BENCH_REPEATS`` (default 3)."""
    return max(1, int(os.environ.get("BENCH_REPEATS", "3")))
