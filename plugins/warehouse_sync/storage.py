"""Where files are: the pipeline config, the staging root (Parquet batch files), the reports root (Data Docs).

Both are ``ObjectStoragePath`` locations, so a local folder and object storage (``s3://bucket/prefix``
with the matching Airflow connection) work alike. They come from documented settings, never from
where this package happens to be installed:

=================================  ==========================================================
setting                            default
=================================  ==========================================================
``WAREHOUSE_SYNC_CONFIG``          ``include/pipelines.yaml`` beside Airflow's DAGs folder
                                   (``[core] dags_folder``/../include), the layout of this
                                   repository and of the usual Airflow project images
``WAREHOUSE_SYNC_STAGING_ROOT``    ``file://$AIRFLOW_HOME/warehouse_sync/staging``
``WAREHOUSE_SYNC_REPORTS_ROOT``    ``file://$AIRFLOW_HOME/warehouse_sync/reports``
=================================  ==========================================================

(``$AIRFLOW_HOME`` defaults to ``~/airflow``, as in Airflow.) Every Airflow component that runs
tasks or serves the data-quality page must see the same roots.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CONFIG_ENV = "WAREHOUSE_SYNC_CONFIG"
STAGING_ENV = "WAREHOUSE_SYNC_STAGING_ROOT"
REPORTS_ENV = "WAREHOUSE_SYNC_REPORTS_ROOT"


def config_path() -> Path:
    """The pipeline file: ``$WAREHOUSE_SYNC_CONFIG``, else ``<dags_folder>/../include/pipelines.yaml``.

    Reads Airflow's ``[core] dags_folder`` setting (no database, no Variable): cheap at DAG parse time.
    """
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")).parent / "include" / "pipelines.yaml"


def _root(env_var: str, folder: str) -> Any:
    from airflow.sdk import ObjectStoragePath

    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    return ObjectStoragePath(os.environ.get(env_var) or f"file://{home / 'warehouse_sync' / folder}")


def staging_root() -> Any:
    """The staging root (``ObjectStoragePath``): ``$WAREHOUSE_SYNC_STAGING_ROOT`` or its default."""
    return _root(STAGING_ENV, "staging")


def reports_root() -> Any:
    """The reports root (``ObjectStoragePath``): ``$WAREHOUSE_SYNC_REPORTS_ROOT`` or its default."""
    return _root(REPORTS_ENV, "reports")


def as_path(uri: str) -> Any:
    """A batch file's URI (as written into XCom by extract) back as an ``ObjectStoragePath``."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(uri if "://" in uri else f"file://{uri}")
