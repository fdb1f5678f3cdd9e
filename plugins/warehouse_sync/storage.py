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
``WAREHOUSE_SYNC_STORAGE_CONN_ID`` none: the Airflow connection of both roots when their URI
                                   names none
=================================  ==========================================================

(``$AIRFLOW_HOME`` defaults to ``~/airflow``, as in Airflow.) Every Airflow component that runs
tasks or serves the data-quality page must see the same roots; with more than one worker
(CeleryExecutor, Kubernetes) they must be object storage, e.g. ``s3://warehouse-sync/staging``.

Staged files and Data Docs hold source rows: on a local folder each file is made owner-only (``0600``)
and its folder ``0700`` (:func:`make_private`) whatever the process umask; object storage has no
modes (its bucket policy decides who reads).

Object storage credentials come only from an Airflow connection, named either in the URI
(``s3://<conn_id>@<bucket>/<prefix>``, which ``ObjectStoragePath`` parses) or by
``WAREHOUSE_SYNC_STORAGE_CONN_ID``; for S3 and any S3-compatible store it is an ``aws``
connection whose extra holds ``endpoint_url`` (and ``region_name``) when the store is not AWS's.
Without either, ``s3://`` uses boto's default chain (an instance or pod role). A path turned into
text (a batch file's URI in XCom) keeps the connection id (``s3://<conn_id>@bucket/…``), never a
secret, so :func:`as_path` reads it back with the same connection.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CONFIG_ENV = "WAREHOUSE_SYNC_CONFIG"
STAGING_ENV = "WAREHOUSE_SYNC_STAGING_ROOT"
REPORTS_ENV = "WAREHOUSE_SYNC_REPORTS_ROOT"
STORAGE_CONN_ENV = "WAREHOUSE_SYNC_STORAGE_CONN_ID"


PRIVATE_FILE_MODE, PRIVATE_FOLDER_MODE = 0o600, 0o700


def make_private(path: Any, folder: bool = False) -> None:
    """Makes a local file owner-only (``0600``), or a local folder (``0700``); object storage: nothing.

    Args:
        path: A ``pathlib.Path``, or an ``ObjectStoragePath`` (only a ``file`` one has modes).
        folder: Whether ``path`` is a folder.
    """
    if isinstance(path, os.PathLike):
        local: str | None = os.fspath(path)
    else:
        local = path.path if getattr(path, "protocol", None) in ("file", "local") else None
    if local is not None:
        os.chmod(local, PRIVATE_FOLDER_MODE if folder else PRIVATE_FILE_MODE)


def config_path() -> Path:
    """The pipeline file: ``$WAREHOUSE_SYNC_CONFIG``, else ``<dags_folder>/../include/pipelines.yaml``.

    Reads Airflow's ``[core] dags_folder`` setting (no database, no Variable): cheap at DAG parse time.
    """
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")).parent / "include" / "pipelines.yaml"


def storage_path(uri: str) -> Any:
    """An ``ObjectStoragePath`` for ``uri`` (``file://…``, ``s3://[conn_id@]bucket/key``, or a bare local path).

    The connection is the one the URI names, else ``$WAREHOUSE_SYNC_STORAGE_CONN_ID`` (object
    storage only; a local file needs none), else none.
    """
    from airflow.sdk import ObjectStoragePath

    uri = uri if "://" in uri else f"file://{uri}"
    scheme, _, rest = uri.partition("://")
    names_conn = "@" in rest.split("/", 1)[0]
    conn_id = os.environ.get(STORAGE_CONN_ENV) or None
    if scheme == "file" or names_conn or conn_id is None:
        return ObjectStoragePath(uri)
    return ObjectStoragePath(uri, conn_id=conn_id)


def _root(env_var: str, folder: str) -> Any:
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    return storage_path(os.environ.get(env_var) or f"file://{home / 'warehouse_sync' / folder}")


def staging_root() -> Any:
    """The staging root (``ObjectStoragePath``): ``$WAREHOUSE_SYNC_STAGING_ROOT`` or its default."""
    return _root(STAGING_ENV, "staging")


def reports_root() -> Any:
    """The reports root (``ObjectStoragePath``): ``$WAREHOUSE_SYNC_REPORTS_ROOT`` or its default."""
    return _root(REPORTS_ENV, "reports")


def as_path(uri: str) -> Any:
    """A batch file's URI (as written into XCom by extract) back as an ``ObjectStoragePath`` (:func:`storage_path`)."""
    return storage_path(uri)
