"""The real DAGs through the real Airflow (``dag.test()``) on TPC-H against real PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from helpers import dags_for

from devkit import airflow_local as runner
from devkit import tpch
from warehouse_sync.bookkeeping.migrate import ensure_tables
from warehouse_sync.db.catalog import describe_source
from warehouse_sync.target.ddl import ensure_target

pytestmark = pytest.mark.airflow
SF = 0.01


@pytest.fixture(scope="module")
def dags(airflow_db, tmp_path_factory):
    """The DAGs built from a test pipeline file (small batches so every window fans out)."""
    with dags_for(tmp_path_factory, {
        "defaults": {"settle_timeout_seconds": 2},
        "pipelines": [
            {"name": "orders", "source": "tpch.orders", "primary_key": ["o_orderkey"], "cursor": "updated_at",
             "target": "tpch.orders", "batch_size": 200, "snapshot_batch_size": 2000, "page_size": 150},
            {"name": "lineitem", "source": "tpch.lineitem", "primary_key": ["l_orderkey", "l_linenumber"],
             "cursor": "updated_at", "target": "tpch.lineitem", "batch_size": 1000, "snapshot_batch_size": 10000,
             "page_size": 700},
        ]}) as dags:
        yield dags


@pytest.fixture
def tpch_source(anchor, source, warehouse):
    """TPC-H SF 0.01 in the source, updated_at spread over the 24 h before anchor; empty warehouse."""
    data = tpch.generate(SF)
    tpch.seed(source, data, anchor)
    warehouse.execute("DROP SCHEMA IF EXISTS tpch CASCADE")
    warehouse.commit()
    return data


def table_summary(conn, table: str, key: str):
    """(rows, distinct keys, sum of hashes of (key, updated_at)): equal only if every version matches."""
    row = conn.execute(f"SELECT count(*), count(DISTINCT ({key})), sum(hashtext(({key}, updated_at)::text)::bigint) "
                       f"FROM {table}").fetchone()  # test-only SQL over fixed names
    conn.commit()
    return row


def assert_success(dag_run):
    assert str(dag_run.state) == "success", runner.task_states(dag_run)


def test_snapshot_then_incremental_windows_bring_tpch_and_its_refresh_set_into_sync(anchor, dags, tpch_source,
                                                                                    source, warehouse):
    orders, lineitem = dags["sync_orders"], dags["sync_lineitem"]
    for dag in (orders, lineitem):
        assert_success(runner.run_window(dag, anchor - runner.WINDOW, {"full_snapshot": True}))
        assert_success(runner.run_window(dag, anchor))
    workload = tpch.apply_workload(source, tpch_source, refresh_set=1, deletes=True)
    assert workload.inserted["orders"] > 0 and workload.updated["orders"] > 0 and workload.deleted["orders"] > 0
    new_keys = [int(line.split("|")[0]) for line in (tpch_source / "orders.tbl.u1").read_text().splitlines()]
    for dag in (orders, lineitem):
        dag_run = runner.run_window(dag, anchor + runner.WINDOW)
        assert_success(dag_run)
        assert sum(1 for ti in dag_run.get_task_instances() if ti.task_id == "extract") >= 2  # fanned out
    found = warehouse.execute("SELECT count(*) FROM tpch.orders WHERE o_orderkey = ANY(%s)", (new_keys,)).fetchone()
    assert found == (len(new_keys),)
    for table, key in (("tpch.orders", "o_orderkey"), ("tpch.lineitem", "l_orderkey, l_linenumber")):
        src = table_summary(source, table, key)
        live = f"(SELECT * FROM {table} WHERE _deleted_at IS NULL) AS live"
        assert table_summary(warehouse, live, key) == src and src[0] == src[1]
    marked = warehouse.execute("SELECT o_orderkey FROM tpch.orders WHERE _deleted_at IS NOT NULL").fetchall()
    assert {k for (k,) in marked} == tpch.deleted_keys(tpch_source, 1)  # RF2: exactly those keys, kept as tombstones
    checks = warehouse.execute(
        "SELECT count(*) FILTER (WHERE status = 'ok'), count(*) FROM warehouse_sync.audit "
        "WHERE step IN ('reconcile_window', 'reconcile_keys') AND window_end = %s",
        (anchor + runner.WINDOW,)).fetchone()
    assert checks == (2, 4)  # windows match; the tables' key sets drifted (RF2 deletes) ...
    after = warehouse.execute(
        "SELECT count(*) FILTER (WHERE status = 'ok'), count(*) FROM warehouse_sync.audit "
        "WHERE step LIKE 'reconcile%%after_repair' AND window_end = %s", (anchor + runner.WINDOW,)).fetchone()
    assert after == (2, 2)  # ... and match after the repair


def test_an_empty_window_plans_no_batches_and_the_run_succeeds(dags, tpch_source):
    dag_run = runner.run_window(dags["sync_orders"], datetime(2026, 1, 1, 2, tzinfo=timezone.utc))
    assert_success(dag_run)
    states = runner.task_states(dag_run)
    assert states["load"] == "success" and states["reconcile"] == "success"
    assert not any(k.startswith("extract[") for k in states)


FAIL_ONCE = """
CREATE SEQUENCE IF NOT EXISTS public.{name}_attempts;
CREATE OR REPLACE FUNCTION public.{name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {condition} AND nextval('public.{name}_attempts') = 1 THEN
        RAISE EXCEPTION 'injected failure: {name}';
    END IF;
    RETURN NULL;
END $$;
"""


def test_a_retried_extract_and_a_retried_load_leave_no_duplicates(anchor, dags, tpch_source, source, warehouse):
    pipeline_dag = dags["sync_orders"]
    warehouse.execute("DROP SEQUENCE IF EXISTS public.fail_extract_attempts, public.fail_load_attempts")
    # The extract fails after its Parquet file is written (its audit row is refused once) ...
    ensure_tables(warehouse)
    warehouse.execute(FAIL_ONCE.format(name="fail_extract", condition="NEW.step = 'extract'"))
    warehouse.execute("CREATE TRIGGER fail_extract AFTER INSERT ON warehouse_sync.audit "
                      "FOR EACH ROW EXECUTE FUNCTION public.fail_extract()")
    # ... and the load fails inside its transaction, after its COPY into the (empty) target.
    from warehouse_sync.config import Pipeline
    from warehouse_sync.model import TableRef
    pipeline = Pipeline(name="orders", source=TableRef("tpch", "orders"), target=TableRef("tpch", "orders"),
                        primary_key=("o_orderkey",), cursor="updated_at")
    ensure_target(warehouse, pipeline, describe_source(source, pipeline.source, pipeline.primary_key, "updated_at"))
    warehouse.execute(FAIL_ONCE.format(name="fail_load", condition="true"))
    warehouse.execute("CREATE TRIGGER fail_load AFTER INSERT ON tpch.orders "
                      "FOR EACH STATEMENT EXECUTE FUNCTION public.fail_load()")
    warehouse.commit()
    try:
        dag_run = runner.run_window(pipeline_dag, anchor, {"full_snapshot": True})
    finally:
        warehouse.execute("DROP TRIGGER IF EXISTS fail_extract ON warehouse_sync.audit; "
                          "DROP TRIGGER IF EXISTS fail_load ON tpch.orders")
        warehouse.commit()
    assert_success(dag_run)
    tries = {(ti.task_id, ti.map_index): ti.try_number for ti in dag_run.get_task_instances()}
    extract_tries = [n for (task_id, _), n in tries.items() if task_id == "extract"]
    assert len(extract_tries) >= 2 and sorted(extract_tries)[-2:] == [1, 2]  # exactly one batch retried
    assert tries[("load", -1)] == 2
    src = table_summary(source, "tpch.orders", "o_orderkey")
    assert table_summary(warehouse, "tpch.orders", "o_orderkey") == src
    failed = warehouse.execute("SELECT count(*) FROM warehouse_sync.audit WHERE step = 'load' AND status = 'failed'"
                               ).fetchone()
    assert failed == (1,)  # the failed attempt left its trace
