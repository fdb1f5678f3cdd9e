"""Test helpers: a small source table with every interesting type, and one-call sync runs."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from warehouse_sync.config import Pipeline
from warehouse_sync.inline import run_window
from warehouse_sync.model import RunStart, TableRef
from warehouse_sync.run import Run

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)

ITEMS_DDL = """
CREATE TABLE t_src.items (
    tenant      text          NOT NULL,
    id          bigint        NOT NULL,
    amount      numeric(18,4),
    note        text,
    flag        boolean,
    born        date,
    seen_at     timestamptz,
    ratio       double precision,
    updated_at  timestamptz   NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX ON t_src.items (updated_at, tenant, id);
"""


def make_pipeline(name: str, primary_key: tuple[str, ...], **settings: Any) -> Pipeline:
    """A pipeline ``t_src.<name>`` -> ``t_dst.<name>`` on cursor ``updated_at`` that never waits.

    Its first run reads only its own window (``initial_load="window"``), so that a test controls
    each window; the first-run snapshot has tests of its own."""
    values = dict(name=name, source=TableRef("t_src", name), target=TableRef("t_dst", name),
                  primary_key=primary_key, cursor="updated_at", settle_timeout_seconds=0, initial_load="window")
    values.update(settings)
    return Pipeline(**values)


def items_pipeline(**overrides: Any) -> Pipeline:
    """A pipeline over ``t_src.items`` (composite text-first key ``tenant, id``)."""
    return make_pipeline("items", ("tenant", "id"), **{"batch_size": 3, "page_size": 2, **overrides})


def create_items(conn, rows: list[tuple]) -> None:
    """Creates ``t_src.items`` and inserts rows.

    Rows: ``(tenant, id, amount, note, flag, born, seen_at, ratio, updated_at)``.
    """
    conn.execute(ITEMS_DDL)
    insert_items(conn, rows)


def insert_items(conn, rows: list[tuple]) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO t_src.items VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    conn.commit()


def simple_rows(count: int, start: datetime = T0, step: timedelta = timedelta(minutes=1), tenant: str = "a"):
    return [(tenant, i, f"{i}.5000", f"note {i}", i % 2 == 0, None, None, i / 3, start + i * step)
            for i in range(count)]


def sync_window(source, warehouse, pipeline: Pipeline, start: datetime, end: datetime, root: Path,
                run_id: str = "test", full_snapshot: bool = False, reconcile: bool = True) -> dict[str, Any]:
    """The scheduled run of ``[start, end)``: see :func:`run_tasks`."""
    return run_tasks(source, warehouse, pipeline, RunStart.scheduled(start, end, full_snapshot), root, run_id,
                     reconcile)


def run_tasks(source, warehouse, pipeline: Pipeline, run: RunStart, root: Path, run_id: str = "test",
              reconcile: bool = True) -> dict[str, Any]:
    """plan -> extract every batch -> load -> reconcile, with the task functions the DAG calls
    (:func:`warehouse_sync.inline.run_window`).

    Returns:
        What each task passes on through XCom (the results' ``to_dict()`` form): ``{"planned", "files"
        (one per extract), "loaded", "reconciled"}`` (``reconciled`` is ``None`` when ``reconcile=False``),
        and ``"result"``: the typed :class:`~warehouse_sync.inline.RunResult`.
    """
    result = run_window(Run(pipeline, source, warehouse, run_id), run, root, reconcile=reconcile)
    return {"planned": result.plan.to_dict(), "files": [e.to_dict() for e in result.extracted],
            "loaded": result.loaded.to_dict(),
            "reconciled": result.reconciled.to_dict() if result.reconciled else None, "result": result}


def warehouse_rows(warehouse, table: str = "t_dst.items", columns: str = "tenant, id, amount, note, updated_at"):
    rows = warehouse.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2").fetchall()  # test-only SQL
    warehouse.commit()
    return rows


LINES_DDL = """
CREATE TABLE t_src.lines (
    order_id   bigint        NOT NULL,
    line       integer       NOT NULL,
    qty        numeric(12,2),
    note       text,
    updated_at timestamptz   NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE INDEX ON t_src.lines (updated_at, order_id, line);
"""


def lines_pipeline(**overrides: Any) -> Pipeline:
    """A pipeline over ``t_src.lines`` (composite integer-first key ``order_id, line``)."""
    return make_pipeline("lines", ("order_id", "line"), **{"batch_size": 500, "page_size": 200, **overrides})


def create_lines(conn, orders: int = 300, lines_per_order: int = 4) -> None:
    """``orders`` x ``lines_per_order`` rows, cursor spread over the hour after T0."""
    conn.execute(LINES_DDL)
    rows = [(o, n, f"{(o * 7 + n) % 50}.25", None if (o + n) % 9 == 0 else f"o{o}l{n}",
             T0 + timedelta(seconds=(o * lines_per_order + n) % 3600))
            for o in range(1, orders + 1) for n in range(1, lines_per_order + 1)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO t_src.lines VALUES (%s, %s, %s, %s, %s)", rows)
    conn.commit()


def dag_module(monkeypatch, name: str = "warehouse_sync_dags_under_test"):
    """The DAG file imported as a module under the shipped pipeline file (its builders and task bodies
    are what a worker runs)."""
    import importlib.util

    from devkit.paths import CONFIG, DAGS

    monkeypatch.setenv("WAREHOUSE_SYNC_CONFIG", str(CONFIG))
    spec = importlib.util.spec_from_file_location(name, DAGS / "warehouse_sync_dags.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@contextmanager
def dags_for(tmp_path_factory, document: dict):
    """The DAGs built from the pipeline file ``document`` (written to a temporary file, with its own
    staging root), through the local Airflow runner; the config variable is removed afterwards."""
    import os

    import yaml

    from devkit import airflow_local as runner

    config = tmp_path_factory.mktemp("config") / "pipelines.yaml"
    config.write_text(yaml.safe_dump(document))
    os.environ["WAREHOUSE_SYNC_CONFIG"] = str(config)
    os.environ["WAREHOUSE_SYNC_STAGING_ROOT"] = f"file://{tmp_path_factory.mktemp('staging')}"
    try:
        yield runner.load_dags()
    finally:
        os.environ.pop("WAREHOUSE_SYNC_CONFIG")


@contextmanager
def live_writer(conn, statements: dict[str, tuple[str, Any]], pause: float = 0.003):
    """A writer thread on ``conn`` that keeps running ``statements`` in turn, one transaction each, until
    the block ends: a live OLTP source. ``statements``: ``{kind: (sql, n -> parameters)}``.

    Yields ``(done, settle)``: the count of each kind run so far, and ``settle(n)``, which waits (30 s at
    most) until ``n`` more statements ran, so that writes land between and during runs.
    """
    import threading
    import time

    stop = threading.Event()
    done = dict.fromkeys(statements, 0)
    kinds = list(statements)

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            kind = kinds[n % len(kinds)]
            query, params = statements[kind]
            conn.execute(query, params(n))
            conn.commit()
            done[kind] += 1
            time.sleep(pause)

    def settle(more: int) -> None:
        deadline, wanted = time.monotonic() + 30, sum(done.values()) + more
        while sum(done.values()) < wanted and time.monotonic() < deadline:
            time.sleep(0.01)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        yield done, settle
    finally:
        stop.set()
        thread.join()


@contextmanager
def logical_wal_source(conn, pipelines: tuple[str, ...]):
    """The source connection on a ``wal_level=logical`` server (else the test is skipped), without the
    replication slots (``ws_<name>``, ``wsn_<name>``) and publications (``ws_<name>``) of these pipelines,
    before and after the test (CDC tests)."""
    import pytest
    from psycopg import sql

    def drop() -> None:
        for name in pipelines:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name IN (%s, %s) AND NOT temporary", (f"ws_{name}", f"wsn_{name}"))
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(f"ws_{name}")))
        conn.commit()

    (level,) = conn.execute("SHOW wal_level").fetchone()
    conn.commit()
    if level != "logical":
        pytest.skip(f"this PostgreSQL runs with wal_level={level}: CDC mode needs logical")
    drop()
    try:
        yield conn
    finally:
        conn.rollback()
        conn.execute("RESET statement_timeout")
        drop()

