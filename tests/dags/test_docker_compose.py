"""docker-compose.yaml: no Docker engine runs here, so the file itself is checked: it parses, has the
Airflow 3 CeleryExecutor services (official shape), a Redis broker, an S3 store whose bucket every
component stages in, both databases with logical WAL, mounts dags/plugins/include, and pins every image."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def compose():
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def pinned(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==([^\s]+)$", (REPO / "requirements.txt").read_text(), re.M)
    assert match, f"{package} is not pinned in requirements.txt"
    return match.group(1)


def test_compose_has_airflow3_services_and_both_databases():
    services = compose()["services"]
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                 "airflow-worker", "airflow-init", "airflow-db", "redis", "seaweedfs", "source-postgres",
                 "warehouse-postgres"):
        assert name in services, name
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name


AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker")


def test_celery_uses_the_redis_broker_and_the_metadata_database_as_result_backend():
    services = compose()["services"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:6379" in env[
            "AIRFLOW__CELERY__BROKER_URL"]
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://") and "@airflow-db/" in env[
            "AIRFLOW__CELERY__RESULT_BACKEND"]
        assert "redis" in services[name]["depends_on"], name


def test_the_worker_scales_no_fixed_name_or_host_port():
    worker = compose()["services"]["airflow-worker"]
    assert worker["command"] == ["airflow", "celery", "worker"]
    assert "container_name" not in worker and "ports" not in worker and "hostname" not in worker


def test_every_component_stages_in_the_same_s3_bucket_created_at_start_and_no_host_path():
    services = compose()["services"]
    roots = {(services[n]["environment"]["WAREHOUSE_SYNC_STAGING_ROOT"],
              services[n]["environment"]["WAREHOUSE_SYNC_REPORTS_ROOT"],
              services[n]["environment"]["WAREHOUSE_SYNC_STORAGE_CONN_ID"]) for n in AIRFLOW_SERVICES}
    assert roots == {("s3://warehouse-sync/staging", "s3://warehouse-sync/reports", "warehouse_sync_s3")}
    conn = json.loads(services["airflow-worker"]["environment"]["AIRFLOW_CONN_WAREHOUSE_SYNC_S3"])
    assert conn["conn_type"] == "aws" and conn["extra"]["endpoint_url"] == "http://seaweedfs:8333"
    assert "${" in conn["password"], "the store's secret must come from the environment"
    assert "-bucket=warehouse-sync" in services["seaweedfs"]["command"]
    for name in AIRFLOW_SERVICES:
        for volume in services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            assert "staging" not in target and "staging" not in source, f"{name} mounts a staging path: {volume}"
        assert services[name]["depends_on"]["seaweedfs"]["condition"] == "service_healthy", name


def test_the_init_step_creates_the_extract_pools():
    command = " ".join(compose()["services"]["airflow-init"]["command"])
    assert "airflow db migrate" in command and "warehouse_sync.config.pools" in command
    assert "airflow pools import" in command


def test_source_and_warehouse_run_with_logical_wal():
    services = compose()["services"]
    for name in ("source-postgres", "warehouse-postgres"):
        assert services[name]["command"] == ["postgres", "-c", "wal_level=logical"], name


def test_airflow_services_mount_dags_plugins_and_include():
    for name, service in compose()["services"].items():
        if name in AIRFLOW_SERVICES:
            targets = {v.split(":")[1] for v in service["volumes"]}
            assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= targets, name


def test_connections_are_the_two_airflow_connection_ids_with_passwords_from_the_environment():
    env = compose()["services"]["airflow-scheduler"]["environment"]
    for var in ("AIRFLOW_CONN_SOURCE_POSTGRES", "AIRFLOW_CONN_WAREHOUSE_POSTGRES"):
        assert "${" in env[var], f"{var} must take its password from the environment"


def test_images_are_pinned_to_the_required_airflow_version():
    version = pinned("apache-airflow")
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"FROM apache/airflow:{version}-python3.11" in dockerfile
    for name, service in compose()["services"].items():
        image = service.get("image", "")
        tag = image.rpartition(":")[2] if ":" in image else ""
        assert re.match(r"^v?\d+\.\d+", tag), f"{name} image is not pinned to a version: {image!r}"
        if name in AIRFLOW_SERVICES:
            assert image.endswith(f":{version}"), name


def test_the_login_the_header_promises_is_the_one_the_init_step_writes():
    services = compose()["services"]
    header = (REPO / "docker-compose.yaml").read_text().split("x-airflow-common")[0]
    assert "login airflow" in header and "$AIRFLOW_UI_PASSWORD (default airflow" in header
    init = services["airflow-init"]
    assert init["environment"]["AIRFLOW_UI_PASSWORD"] == "${AIRFLOW_UI_PASSWORD:-airflow}"
    path = init["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert f'"$${{AIRFLOW_UI_PASSWORD}}" > {path}' in init["command"][-1]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "airflow:admin", name
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == path, name
        assert any(v.split(":")[1] == str(Path(path).parent) for v in services[name]["volumes"]), name
    assert "mkdir -p /opt/airflow/auth" in (REPO / "Dockerfile").read_text()


def test_the_source_is_seeded_on_first_start_with_the_tables_the_shipped_pipelines_read():
    mounts = [v for v in compose()["services"]["source-postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert [m.split(":")[0] for m in mounts] == ["./include/sql/tpch/schema.sql", "./include/sql/tpch/compose_seed.sql",
                                                  "./include/sql/tpch/indexes.sql"]
    assert sorted(m.split(":")[1] for m in mounts) == [m.split(":")[1] for m in mounts], "initdb runs them by name"
    for m in mounts:
        assert (REPO / m.split(":")[0]).is_file(), m
    shipped = yaml.safe_load((REPO / "include" / "pipelines.yaml").read_text())["pipelines"]
    schema = (REPO / "include/sql/tpch/schema.sql").read_text()
    for p in shipped:
        assert f"CREATE TABLE {p['source']} (" in schema, p["source"]
