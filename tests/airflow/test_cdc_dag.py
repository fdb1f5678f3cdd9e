"""A ``mode: cdc`` pipeline through the real Airflow (``dag.test()``): TPC-H orders snapshotted from a
replication slot, then RF1 inserts, updates and RF2 hard deletes arrive in the first run after they commit."""

from __future__ import annotations

import pytest
from helpers import dags_for

from devkit import airflow_local as runner
from devkit import tpch

pytestmark = pytest.mark.airflow
SF = 0.01
SLOT = "ws_orders_cdc"


@pytest.fixture(scope="module")
def cdc_dags(airflow_db, tmp_path_factory):
    with dags_for(tmp_path_factory, {"pipelines": [
        {"name": "orders_cdc", "mode": "cdc", "source": "tpch.orders", "primary_key": ["o_orderkey"],
         "cursor": "updated_at", "target": "tpch_cdc.orders", "cdc": {"chunk_changes": 4000},
         "settle_timeout_seconds": 2},
    ]}) as dags:
        yield dags


@pytest.fixture
def tpch_cdc_source(anchor, source, warehouse):
    (level,) = source.execute("SHOW wal_level").fetchone()
    source.commit()
    if level != "logical":
        pytest.skip("this PostgreSQL runs with wal_level != logical: CDC mode needs logical")
    data = tpch.generate(SF)
    tpch.seed(source, data, anchor)
    warehouse.execute("DROP SCHEMA IF EXISTS tpch_cdc CASCADE; DROP SCHEMA IF EXISTS warehouse_sync CASCADE")
    warehouse.commit()
    yield data
    source.rollback()
    source.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (SLOT,))
    source.execute(f"DROP PUBLICATION IF EXISTS {SLOT}")  # test-only SQL over a fixed name
    source.commit()


def live_summary(conn, table: str):
    row = conn.execute(f"SELECT count(*), sum(hashtext((o_orderkey, o_orderstatus, o_totalprice, o_comment)::text)"
                       f"::bigint) FROM {table}").fetchone()  # test-only SQL over fixed names
    conn.commit()
    return row


def test_cdc_dag_snapshots_then_applies_rf1_updates_and_rf2_deletes_in_the_next_run(anchor, cdc_dags, tpch_cdc_source,
                                                                                    source, warehouse):
    dag = cdc_dags["sync_orders_cdc"]
    first = runner.run_window(dag, anchor)
    assert str(first.state) == "success", runner.task_states(first)
    assert live_summary(warehouse, "tpch_cdc.orders") == live_summary(source, "tpch.orders")
    workload = tpch.apply_workload(source, tpch_cdc_source, refresh_set=1, deletes=True)
    assert workload.deleted["orders"] > 0
    second = runner.run_window(dag, anchor + runner.WINDOW)
    assert str(second.state) == "success", runner.task_states(second)
    live = "(SELECT * FROM tpch_cdc.orders WHERE _deleted_at IS NULL) AS live"
    assert live_summary(warehouse, live) == live_summary(source, "tpch.orders")
    marked = warehouse.execute("SELECT o_orderkey FROM tpch_cdc.orders WHERE _deleted_at IS NOT NULL "
                               "AND _run_id = %s", (second.run_id,)).fetchall()
    warehouse.commit()
    assert {k for (k,) in marked} == tpch.deleted_keys(tpch_cdc_source, 1)  # by the log, in this run
    drift = warehouse.execute("SELECT count(*) FROM warehouse_sync.drift_history").fetchone()
    warehouse.commit()
    assert drift == (0,)  # the run's reconcile found nothing to repair
    (confirmed,) = source.execute("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %s",
                                  (SLOT,)).fetchone()
    source.commit()
    assert confirmed is not None
