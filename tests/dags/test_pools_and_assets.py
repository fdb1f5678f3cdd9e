"""Per-pipeline connections, extract pools and assets in the parsed DAGs: extracts run in
``default_pool`` (nothing to set up) unless a pipeline names ``extract_pool``, each run reads its
source with at most ``extract_pool_slots`` extracts at once, each load updates the asset of its
target table, and the pools file the deployment imports (``airflow pools import``) holds only the
named pools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from warehouse_sync.config import load_config
from warehouse_sync.config.pools import pools_file

DAGS = Path(__file__).resolve().parents[2] / "dags"

PIPELINES = {"pipelines": [
    {"name": "crm_orders", "source": "crm.orders", "target": "dw.crm_orders", "primary_key": "id",
     "cursor": "updated_at", "source_conn_id": "crm_postgres", "extract_pool": "extract_crm", "extract_pool_slots": 2},
    {"name": "crm_items", "source": "crm.items", "target": "dw.crm_items", "primary_key": "id",
     "cursor": "updated_at", "source_conn_id": "crm_postgres", "extract_pool": "extract_crm", "extract_pool_slots": 3,
     "warehouse_conn_id": "dw_postgres"},
    {"name": "shop_orders", "source": "shop.orders", "target": "dw.shop_orders", "primary_key": "id",
     "cursor": "updated_at"},
]}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pools") / "pipelines.yaml"
    path.write_text(yaml.safe_dump(PIPELINES))
    return path


@pytest.fixture(scope="module")
def dags(config_file):
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WAREHOUSE_SYNC_CONFIG", str(config_file))
        bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags


def test_extracts_run_in_default_pool_unless_the_pipeline_names_a_pool(dags):
    pools = {dag_id: dag.get_task("extract").pool for dag_id, dag in dags.items() if dag_id.startswith("sync_")}
    assert pools == {"sync_crm_orders": "extract_crm", "sync_crm_items": "extract_crm",
                     "sync_shop_orders": "default_pool"}


def test_a_run_reads_its_source_with_at_most_extract_pool_slots_extracts_at_once(dags):
    limits = {dag_id: dag.get_task("extract").max_active_tis_per_dagrun for dag_id, dag in dags.items()
              if dag_id.startswith("sync_")}
    assert limits == {"sync_crm_orders": 2, "sync_crm_items": 3, "sync_shop_orders": 4}


def test_only_the_extracts_can_be_pooled(dags):
    for dag in dags.values():
        assert {t.pool for t in dag.tasks if t.task_id != "extract"} == {"default_pool"}, dag.dag_id


def test_each_load_updates_the_asset_of_its_target_table_in_its_warehouse(dags):
    outlets = {dag_id: [a.uri for a in dag.get_task("load").outlets] for dag_id, dag in dags.items()
               if dag_id.startswith("sync_")}
    assert outlets == {"sync_crm_orders": ["warehouse-sync://warehouse_postgres/dw.crm_orders"],
                       "sync_crm_items": ["warehouse-sync://dw_postgres/dw.crm_items"],
                       "sync_shop_orders": ["warehouse-sync://warehouse_postgres/dw.shop_orders"]}
    for dag in dags.values():
        assert all(not t.outlets for t in dag.tasks if t.task_id != "load"), dag.dag_id


def test_the_pools_file_holds_only_the_named_pools_with_the_largest_size_asked(config_file):
    assert pools_file(load_config(config_file).pipelines) == {
        "extract_crm": {"slots": 3, "description": "warehouse-sync extracts (extract_crm)", "include_deferred": False}}


def test_the_pools_command_prints_what_airflow_pools_import_reads(config_file):
    printed = subprocess.run([sys.executable, "-m", "warehouse_sync.config.pools", str(config_file)],
                             capture_output=True, text=True, check=True).stdout
    assert set(json.loads(printed)) == {"extract_crm"}
