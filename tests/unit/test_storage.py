"""Where files are: the pipeline file, the staging root and the reports root, from documented settings
(never from where the package is installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from warehouse_sync.storage import as_path, config_path, reports_root, staging_root

ROOTS = [(staging_root, "WAREHOUSE_SYNC_STAGING_ROOT", "staging"),
         (reports_root, "WAREHOUSE_SYNC_REPORTS_ROOT", "reports")]


@pytest.mark.parametrize(("root", "variable", "folder"), ROOTS, ids=["staging", "reports"])
def test_a_root_defaults_to_a_folder_of_airflow_home(monkeypatch, tmp_path, root, variable, folder):
    monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert str(root()) == f"file://{tmp_path}/warehouse_sync/{folder}"


@pytest.mark.parametrize(("root", "variable", "folder"), ROOTS, ids=["staging", "reports"])
def test_a_root_follows_its_environment_variable(monkeypatch, tmp_path, root, variable, folder):
    monkeypatch.setenv(variable, f"file://{tmp_path}/elsewhere")
    assert str(root()).rstrip("/") == f"file://{tmp_path}/elsewhere"


def test_reports_root_defaults_to_airflow_home_and_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("WAREHOUSE_SYNC_REPORTS_ROOT", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert str(reports_root()).endswith("/home/warehouse_sync/reports")
    monkeypatch.setenv("WAREHOUSE_SYNC_REPORTS_ROOT", f"file://{tmp_path}")
    assert str(reports_root()).rstrip("/").endswith(str(tmp_path))


def test_without_airflow_home_the_roots_are_under_the_users_airflow_folder(monkeypatch):
    monkeypatch.delenv("WAREHOUSE_SYNC_STAGING_ROOT", raising=False)
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    assert str(staging_root()) == f"file://{Path.home()}/airflow/warehouse_sync/staging"


def test_the_config_file_follows_warehouse_sync_config(monkeypatch, tmp_path):
    monkeypatch.setenv("WAREHOUSE_SYNC_CONFIG", str(tmp_path / "mine.yaml"))
    assert config_path() == tmp_path / "mine.yaml"


def test_the_config_file_defaults_to_include_beside_the_dags_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("WAREHOUSE_SYNC_CONFIG", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "project" / "dags"))
    assert config_path() == tmp_path / "project" / "include" / "pipelines.yaml"


def test_a_batch_file_uri_or_bare_path_reads_back_as_a_storage_path(tmp_path):
    assert str(as_path(f"file://{tmp_path}/b.parquet")) == f"file://{tmp_path}/b.parquet"
    assert str(as_path(f"{tmp_path}/b.parquet")) == f"file://{tmp_path}/b.parquet"


def test_an_s3_root_takes_the_storage_connection_setting_and_keeps_it_in_its_text(monkeypatch):
    monkeypatch.setenv("WAREHOUSE_SYNC_STAGING_ROOT", "s3://warehouse-sync/staging")
    monkeypatch.setenv("WAREHOUSE_SYNC_STORAGE_CONN_ID", "staging_s3")
    root = staging_root()
    assert root.conn_id == "staging_s3"
    batch = root / "orders" / "w" / "batch-00000.parquet"
    assert str(batch) == "s3://staging_s3@warehouse-sync/staging/orders/w/batch-00000.parquet"
    assert as_path(str(batch)).conn_id == "staging_s3"


def test_a_connection_named_in_the_uri_wins_over_the_setting(monkeypatch):
    monkeypatch.setenv("WAREHOUSE_SYNC_REPORTS_ROOT", "s3://reports_s3@bucket/reports")
    monkeypatch.setenv("WAREHOUSE_SYNC_STORAGE_CONN_ID", "staging_s3")
    assert reports_root().conn_id == "reports_s3"


def test_a_local_root_ignores_the_storage_connection(monkeypatch, tmp_path):
    monkeypatch.setenv("WAREHOUSE_SYNC_STAGING_ROOT", f"file://{tmp_path}")
    monkeypatch.setenv("WAREHOUSE_SYNC_STORAGE_CONN_ID", "staging_s3")
    assert staging_root().conn_id is None
