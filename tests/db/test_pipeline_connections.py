"""A pipeline's own ``source_conn_id`` / ``warehouse_conn_id`` are the connections its tasks open."""

from __future__ import annotations

import pytest
from helpers import items_pipeline
from psycopg.conninfo import conninfo_to_dict

from warehouse_sync.db.connections import SOURCE_CONN_ID, WAREHOUSE_CONN_ID, source_and_warehouse


def test_a_pipeline_connects_through_its_own_connection_ids(db_uris, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CRM_SOURCE", db_uris[SOURCE_CONN_ID])
    monkeypatch.setenv("AIRFLOW_CONN_DW_TARGET", db_uris[WAREHOUSE_CONN_ID])
    monkeypatch.delenv("AIRFLOW_CONN_SOURCE_POSTGRES")  # the defaults would fail: only the pipeline's ids work
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE_POSTGRES")
    pipeline = items_pipeline(source_conn_id="crm_source", warehouse_conn_id="dw_target")
    with source_and_warehouse(pipeline) as (src, wh):
        names = (src.execute("SELECT current_database()").fetchone()[0],
                 wh.execute("SELECT current_database()").fetchone()[0])
    assert names == tuple(conninfo_to_dict(db_uris[c])["dbname"] for c in (SOURCE_CONN_ID, WAREHOUSE_CONN_ID))


def test_an_undefined_connection_id_is_named_in_the_error(monkeypatch):
    pipeline = items_pipeline(source_conn_id="nowhere_source")
    with pytest.raises(Exception, match="nowhere_source"):
        with source_and_warehouse(pipeline):
            pass
