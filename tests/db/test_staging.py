"""Staging cleans up after itself: a killed extract's temporary file is gone after the batch's rerun,
and the daily cleanup task removes old windows and records the staging size it left (real files,
real PostgreSQL, the task functions the DAGs call)."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from helpers import (
    T0,
    create_items,
    insert_items,
    items_pipeline,
    run_tasks,
    simple_rows,
    sync_window,
    warehouse_rows,
)

from warehouse_sync import tasks
from warehouse_sync.model import RunStart, Window
from warehouse_sync.quality.page import collect, staging_text
from warehouse_sync.run import Run
from warehouse_sync.sync import extract as extract_module
from warehouse_sync.target.staging import window_folder_name

HOUR = timedelta(hours=1)


def local_root(tmp_path: Path):
    return tmp_path


def object_storage_root(tmp_path: Path):
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(f"file://{tmp_path}")


def killed_attempt(folder: Path, batch_index: int) -> Path:
    """What a killed extract leaves: half a Parquet file under its temporary name."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".batch-{batch_index:05d}.parquet.{uuid.uuid4().hex}.tmp"
    path.write_bytes(b"PAR1" + b"\0" * 1000)
    return path


def temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("make_root", [local_root, object_storage_root], ids=["pathlib", "object_storage"])
def test_a_killed_extracts_temporary_file_is_gone_after_the_batchs_rerun_and_another_batchs_stays(
        source, warehouse, tmp_path, make_root):
    create_items(source, simple_rows(7))
    pipeline = items_pipeline()  # batch_size 3: batches 0, 1, 2
    run = Run(pipeline, source, warehouse, "run")
    planned = tasks.plan(run, RunStart.scheduled(T0, T0 + 2 * HOUR))
    batches = planned.batches
    assert len(batches) == 3
    folder = tmp_path / "items" / window_folder_name(Window(T0, T0 + 2 * HOUR))
    killed_0, killed_0_again = killed_attempt(folder, 0), killed_attempt(folder, 0)
    writing_1 = killed_attempt(folder, 1)  # batch 1's own (killed or still running) attempt

    root = make_root(tmp_path)
    files = [tasks.extract(run, planned, batches[0], root=root)]
    assert not killed_0.exists() and not killed_0_again.exists()
    assert temporary_files(folder) == [writing_1.name]

    files += [tasks.extract(run, planned, b, root=root) for b in batches[1:]]
    assert temporary_files(folder) == []
    assert sorted(p.name for p in folder.iterdir()) == ["batch-00000.parquet", "batch-00001.parquet",
                                                       "batch-00002.parquet"]
    tasks.load(run, planned, files)
    assert len(warehouse_rows(warehouse)) == 7


def test_a_failed_extract_removes_its_own_temporary_file(source, warehouse, tmp_path, monkeypatch):
    create_items(source, simple_rows(3))
    pipeline = items_pipeline(page_size=1)
    run = Run(pipeline, source, warehouse, "run")
    planned = tasks.plan(run, RunStart.scheduled(T0, T0 + 2 * HOUR))
    (batch,) = planned.batches
    read_pages = extract_module.read_pages

    def one_page_then_lost_connection(*args, **kwargs):
        yield next(read_pages(*args, **kwargs))
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(extract_module, "read_pages", one_page_then_lost_connection)
    with pytest.raises(psycopg.OperationalError):
        tasks.extract(run, planned, batch, root=tmp_path)
    source.rollback()
    folder = tmp_path / "items" / window_folder_name(Window(T0, T0 + 2 * HOUR))
    assert list(folder.iterdir()) == []

    monkeypatch.setattr(extract_module, "read_pages", read_pages)
    written = tasks.extract(run, planned, batch, root=tmp_path)
    assert written.rows == 3 and [p.name for p in folder.iterdir()] == ["batch-00000.parquet"]


def staged_on_schedule(extracted: list[dict], window_end) -> None:
    """Sets the staged files' modification time to just after their window end, as a scheduled run would."""
    stamp = (window_end + timedelta(minutes=5)).timestamp()
    for f in (f for e in extracted for f in e["files"]):
        os.utime(f["path"], (stamp, stamp))


def audit_rows(warehouse, step: str = "clean_staging"):
    rows = warehouse.execute(
        "SELECT run_id, rows, bytes, window_start, window_end, status, detail FROM warehouse_sync.audit "
        "WHERE step = %s ORDER BY id", (step,)).fetchall()
    warehouse.commit()
    return rows


def test_the_cleanup_task_removes_old_windows_and_records_the_staging_size_left(source, warehouse, tmp_path):
    later = T0 + timedelta(days=10)
    create_items(source, simple_rows(5))
    insert_items(source, simple_rows(4, start=later, tenant="b"))
    pipeline = items_pipeline()
    old = sync_window(source, warehouse, pipeline, T0, T0 + 2 * HOUR, tmp_path, run_id="sync_old")
    # A backfill run: a scheduled one would extend back to the watermark (T0 + 2 h), one window folder for both.
    new = run_tasks(source, warehouse, pipeline, RunStart.scheduled(later, later + 2 * HOUR, backfill=True), tmp_path,
                    run_id="sync_new")
    staged_on_schedule(old["files"], T0 + 2 * HOUR)
    staged_on_schedule(new["files"], later + 2 * HOUR)
    old_folder = tmp_path / "items" / window_folder_name(Window(T0, T0 + 2 * HOUR))
    new_folder = tmp_path / "items" / window_folder_name(Window(later, later + 2 * HOUR))
    old_bytes = sum(f["bytes"] for f in old["files"])
    new_bytes = sum(f["bytes"] for f in new["files"])
    assert len(old["files"]) == 2 and len(new["files"]) == 2

    now = T0 + timedelta(days=15)  # cutoff T0 + 8 days: the old window goes, the new one stays
    result = tasks.clean_staging(warehouse, pipeline, "reconcile_daily", root=tmp_path, now=now)
    assert result["removed_windows"] == [old_folder.name]
    assert (result["removed_files"], result["removed_bytes"]) == (2, old_bytes)
    assert (result["kept_files"], result["kept_bytes"]) == (2, new_bytes)
    assert not old_folder.exists() and sorted(p.name for p in new_folder.iterdir()) == [
        "batch-00000.parquet", "batch-00001.parquet"]

    again = tasks.clean_staging(warehouse, pipeline, "reconcile_daily_2", root=tmp_path, now=now)
    assert (again["removed_windows"], again["removed_files"], again["kept_bytes"]) == ([], 0, new_bytes)

    first, second = audit_rows(warehouse)
    run_id, rows, bytes_, start, end, status, detail = first
    assert (run_id, rows, bytes_, start, end, status) == ("reconcile_daily", 2, old_bytes, None,
                                                          now - timedelta(days=7), "ok")
    assert detail == {"kept_bytes": new_bytes, "kept_files": 2, "removed_windows": [old_folder.name],
                      "retention_days": 7, "errors": []}
    assert second[1:3] == (0, 0) and second[6]["kept_bytes"] == new_bytes

    (view,) = collect(warehouse, (pipeline,))
    assert view.staging.startswith(staging_text(new_bytes, 2, 7, None) + " (measured ")
    assert " KiB in 2 files, kept 7 days" in view.staging
    assert [r.run_id for r in view.runs] == ["sync_new", "sync_old"]  # a cleanup is no run of its own


def test_the_cleanup_task_on_a_fresh_warehouse_with_nothing_staged_records_zero(warehouse, tmp_path):
    pipeline = items_pipeline(staging_retention_days=3)
    result = tasks.clean_staging(warehouse, pipeline, "reconcile_daily", root=tmp_path)
    assert (result["removed_files"], result["kept_files"], result["kept_bytes"], result["retention_days"]) == (
        0, 0, 0, 3)
    ((_, rows, bytes_, _, _, status, detail),) = audit_rows(warehouse)
    assert (rows, bytes_, status, detail["kept_bytes"], detail["removed_windows"]) == (0, 0, "ok", 0, [])
