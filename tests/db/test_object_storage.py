"""Staging on object storage: extract writes each batch as an object in a real S3 store (SeaweedFS),
load reads the objects back, a retry overwrites its own object, and both cleanups (a killed
attempt's temporary object, expired windows) work there; nothing lands on local disk."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from helpers import T0, create_items, insert_items, items_pipeline, simple_rows, warehouse_rows

from devkit.servers import object_keys, s3_client
from warehouse_sync import tasks
from warehouse_sync.model import RunStart, Window
from warehouse_sync.run import Run
from warehouse_sync.storage import staging_root
from warehouse_sync.target.staging import window_folder_name

HOUR = timedelta(hours=1)


@pytest.fixture
def s3_staging(s3_store, monkeypatch, request):
    """``WAREHOUSE_SYNC_STAGING_ROOT`` = ``s3://<bucket>/<test's own prefix>``, the connection by setting."""
    prefix = f"{request.node.name[:60]}-{datetime.now(timezone.utc):%H%M%S%f}"
    monkeypatch.setenv("WAREHOUSE_SYNC_STAGING_ROOT", f"s3://{s3_store.bucket}/{prefix}")
    monkeypatch.setenv("WAREHOUSE_SYNC_STORAGE_CONN_ID", s3_store.conn_id)
    return prefix


def keys(s3_store, prefix: str) -> list[str]:
    return sorted(k.removeprefix(prefix + "/") for k in object_keys(s3_store.endpoint_url, s3_store.bucket, prefix))


def extract_all(run, planned):
    return [tasks.extract(run, planned, b) for b in planned.batches]


def test_extract_and_load_go_through_s3_objects_and_a_retry_overwrites_its_own_object(
        source, warehouse, s3_store, s3_staging, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written to a relative local path would land here
    create_items(source, simple_rows(7))
    pipeline = items_pipeline()  # batch_size 3: three batches
    run = Run(pipeline, source, warehouse, "run")
    planned = tasks.plan(run, RunStart.scheduled(T0, T0 + 2 * HOUR))
    extracted = extract_all(run, planned)
    files = [f for e in extracted for f in e.files]
    folder = f"items/{window_folder_name(Window(T0, T0 + 2 * HOUR))}"
    assert [f.path for f in files] == [
        f"s3://{s3_store.conn_id}@{s3_store.bucket}/{s3_staging}/{folder}/batch-{i:05d}.parquet" for i in range(3)]
    assert keys(s3_store, s3_staging) == [f"{folder}/batch-{i:05d}.parquet" for i in range(3)]
    sizes = {k["Key"]: k["Size"] for k in s3_client(s3_store.endpoint_url).list_objects_v2(
        Bucket=s3_store.bucket, Prefix=s3_staging)["Contents"]}
    assert sorted(sizes.values()) == sorted(f.bytes for f in files)

    retried = tasks.extract(run, planned, planned.batches[0])
    assert retried.files[0].path == files[0].path
    assert keys(s3_store, s3_staging) == [f"{folder}/batch-{i:05d}.parquet" for i in range(3)]

    loaded = tasks.load(run, planned, extracted)
    assert loaded.staged == 7 and len(warehouse_rows(warehouse)) == 7
    assert list(tmp_path.iterdir()) == [] and not str(staging_root()).startswith("file:")


def test_a_killed_attempts_temporary_object_is_removed_by_the_batchs_rerun_and_another_batchs_stays(
        source, warehouse, s3_store, s3_staging):
    create_items(source, simple_rows(7))
    pipeline = items_pipeline()
    run = Run(pipeline, source, warehouse, "run")
    planned = tasks.plan(run, RunStart.scheduled(T0, T0 + 2 * HOUR))
    folder = f"{s3_staging}/items/{window_folder_name(Window(T0, T0 + 2 * HOUR))}"
    client = s3_client(s3_store.endpoint_url)
    for name in (".batch-00000.parquet.dead1.tmp", ".batch-00000.parquet.dead2.tmp", ".batch-00001.parquet.live.tmp"):
        client.put_object(Bucket=s3_store.bucket, Key=f"{folder}/{name}", Body=b"PAR1" + b"\0" * 100)

    tasks.extract(run, planned, planned.batches[0])
    assert keys(s3_store, folder) == [".batch-00001.parquet.live.tmp", "batch-00000.parquet"]


def test_the_cleanup_task_removes_expired_windows_from_the_bucket_and_keeps_the_rest(
        source, warehouse, s3_store, s3_staging):
    later = T0 + timedelta(days=30)
    create_items(source, simple_rows(5))
    insert_items(source, simple_rows(4, start=later, tenant="b"))
    pipeline = items_pipeline()
    run = Run(pipeline, source, warehouse, "run")
    for start in (T0, later):  # backfill runs: a scheduled one would extend back to the watermark
        planned = tasks.plan(run, RunStart.scheduled(start, start + 2 * HOUR, backfill=True))
        tasks.load(run, planned, extract_all(run, planned))
    old, new = (window_folder_name(Window(s, s + 2 * HOUR)) for s in (T0, later))
    assert {k.split("/")[1] for k in keys(s3_store, s3_staging)} == {old, new}

    # the objects were written now: a cutoff a day from now lets the old window go; the new one ends after it
    now = datetime.now(timezone.utc) + timedelta(days=pipeline.staging_retention_days + 1)
    result = tasks.clean_staging(warehouse, pipeline, "reconcile_daily", now=now)
    assert result["removed_windows"] == [old] and result["removed_files"] == 2 and result["errors"] == []
    assert {k.split("/")[1] for k in keys(s3_store, s3_staging)} == {new}
    assert result["kept_files"] == 2 and result["kept_bytes"] > 0
    again = tasks.clean_staging(warehouse, pipeline, "reconcile_daily_2", now=now)
    assert (again["removed_files"], again["kept_bytes"]) == (0, result["kept_bytes"])
