"""docker-compose.yaml: no Docker engine runs here, so the file itself is checked: it parses, has the
Airflow 3 services and both databases, mounts dags/plugins/include, and pins the versions we pin."""

from __future__ import annotations

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
                 "airflow-init", "airflow-db", "source-postgres", "warehouse-postgres"):
        assert name in services, name
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_airflow_services_mount_dags_plugins_and_include():
    for name, service in compose()["services"].items():
        if name.startswith("airflow-") and name != "airflow-db":
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
        assert ":" in image and not image.endswith(":latest"), f"{name} image is not pinned: {image!r}"
        if name.startswith("airflow-") and name != "airflow-db":
            assert image.endswith(f":{version}"), name
