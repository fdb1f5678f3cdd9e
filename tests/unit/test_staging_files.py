"""Staged files clean up after themselves: window folder names, orphaned temporary files, retention,
and the staging size on the data-quality page. Real files in a temporary folder, no database."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import T0, make_pipeline

from warehouse_sync.model import Window
from warehouse_sync.quality.page import TableView, render, staging_text
from warehouse_sync.target.staging import (
    StagingCleanup,
    is_temporary_of,
    remove_expired,
    remove_orphans,
    window_end_of,
    window_folder_name,
)

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)


def test_the_window_end_is_read_back_from_a_window_folders_name():
    window = Window(T0, T0 + timedelta(hours=2))
    name = window_folder_name(window)
    assert name == "20261120T000000000000Z__20261120T020000000000Z"
    assert window_end_of(name) == T0 + timedelta(hours=2)
    assert window_end_of(name).tzinfo == timezone.utc


def test_a_snapshot_folder_begin_end_has_its_window_end():
    name = window_folder_name(Window(None, T0))
    assert name == "begin__20261120T000000000000Z"
    assert window_end_of(name) == T0


def test_microseconds_survive_the_folder_name():
    end = datetime(2026, 11, 20, 1, 2, 3, 456789, tzinfo=timezone.utc)
    assert window_end_of(window_folder_name(Window(T0, end))) == end


@pytest.mark.parametrize("name", [
    "", "begin", "__20261120T000000000000Z", "begin__", "begin__yesterday", "begin__20261120",
    "nonsense__20261120T000000000000Z", "a__b__c", "20261120T000000000000Z", ".batch-00000.parquet.x.tmp",
    "begin__20261120T000000000000Z__20261120T000000000000Z",
])
def test_a_name_that_is_no_window_folder_has_no_window_end(name):
    assert window_end_of(name) is None


def test_a_temporary_file_belongs_to_exactly_one_batch():
    name = ".batch-00001.parquet.0123456789abcdef.tmp"
    assert is_temporary_of(name, 1)
    assert not is_temporary_of(name, 10) and not is_temporary_of(name, 0)
    assert not is_temporary_of("batch-00001.parquet", 1)
    assert not is_temporary_of(".batch-00001.parquet.0123.part", 1)


def write(path: Path, size: int, age: timedelta | None = None) -> Path:
    """A file of ``size`` bytes, last modified ``age`` before NOW (default: one day before its window end)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if age is not None:
        stamp = (NOW - age).timestamp()
        os.utime(path, (stamp, stamp))
    return path


def window_folder(root: Path, pipeline: str, end: datetime, snapshot: bool = False) -> Path:
    start = None if snapshot else end - timedelta(hours=2)
    return root / pipeline / window_folder_name(Window(start, end))


def test_orphans_of_the_batch_go_and_other_batches_temporary_files_stay(tmp_path):
    folder = tmp_path / "items" / window_folder_name(Window(T0, T0 + timedelta(hours=2)))
    mine = [write(folder / ".batch-00001.parquet.aaaa.tmp", 10), write(folder / ".batch-00001.parquet.bbbb.tmp", 3)]
    other = write(folder / ".batch-00002.parquet.cccc.tmp", 7)
    done = write(folder / "batch-00001.parquet", 5)
    assert sorted(remove_orphans(folder, 1)) == [p.name for p in mine]
    assert not any(p.exists() for p in mine) and other.exists() and done.exists()
    assert remove_orphans(folder, 1) == []
    assert remove_orphans(tmp_path / "no" / "such" / "folder", 1) == []


def test_remove_orphans_leaves_the_file_it_is_told_to_keep(tmp_path):
    own = write(tmp_path / ".batch-00000.parquet.own.tmp", 1)
    old = write(tmp_path / ".batch-00000.parquet.old.tmp", 1)
    assert remove_orphans(tmp_path, 0, keep=own.name) == [old.name]
    assert own.exists()


def old_and_new_windows(root: Path) -> dict[str, Path]:
    """Windows of pipeline ``items`` relative to NOW with retention 7 days, and one of ``other``."""
    old = window_folder(root, "items", NOW - timedelta(days=10))
    write(old / "batch-00000.parquet", 1000, age=timedelta(days=10))
    write(old / "batch-00001.parquet", 500, age=timedelta(days=10))
    write(old / ".batch-00002.parquet.dead.tmp", 24, age=timedelta(days=10))  # a killed extract's leftover
    snapshot = window_folder(root, "items", NOW - timedelta(days=30), snapshot=True)
    write(snapshot / "batch-00000.parquet", 4000, age=timedelta(days=30))
    recent = window_folder(root, "items", NOW - timedelta(days=6, hours=22))
    write(recent / "batch-00000.parquet", 300, age=timedelta(days=6))
    write(recent / "batch-00001.parquet", 200, age=timedelta(days=6))
    backfilled = window_folder(root, "items", NOW - timedelta(days=20))  # an old window staged an hour ago
    write(backfilled / "batch-00000.parquet", 70, age=timedelta(hours=1))
    stranger = root / "items" / "keep-me"
    write(stranger / "notes.txt", 6, age=timedelta(days=100))
    other = window_folder(root, "other", NOW - timedelta(days=10))
    write(other / "batch-00000.parquet", 9, age=timedelta(days=10))
    return {"old": old, "snapshot": snapshot, "recent": recent, "backfilled": backfilled, "stranger": stranger,
            "other": other}


def test_retention_removes_only_windows_that_ended_before_the_limit_and_reports_sizes(tmp_path):
    folders = old_and_new_windows(tmp_path)
    result = remove_expired(tmp_path, "items", 7, now=NOW)
    assert result.cutoff == NOW - timedelta(days=7) and result.retention_days == 7
    assert result.removed_windows == (folders["snapshot"].name, folders["old"].name)  # oldest window end first
    assert (result.removed_files, result.removed_bytes) == (4, 4000 + 1000 + 500 + 24)
    assert (result.kept_windows, result.kept_files, result.kept_bytes) == (3, 4, 300 + 200 + 70 + 6)
    assert result.errors == ()
    assert not folders["old"].exists() and not folders["snapshot"].exists()
    for kept in ("recent", "backfilled", "stranger", "other"):
        assert folders[kept].is_dir(), kept
    assert (tmp_path / "items").is_dir()


def test_retention_is_idempotent(tmp_path):
    old_and_new_windows(tmp_path)
    first = remove_expired(tmp_path, "items", 7, now=NOW)
    again = remove_expired(tmp_path, "items", 7, now=NOW)
    assert (again.removed_windows, again.removed_files, again.removed_bytes) == ((), 0, 0)
    assert (again.kept_windows, again.kept_files, again.kept_bytes) == (
        first.kept_windows, first.kept_files, first.kept_bytes)


def test_a_longer_retention_keeps_more(tmp_path):
    old_and_new_windows(tmp_path)
    result = remove_expired(tmp_path, "items", 14, now=NOW)
    assert [window_end_of(n) for n in result.removed_windows] == [NOW - timedelta(days=30)]


def test_retention_of_a_pipeline_with_nothing_staged_removes_nothing(tmp_path):
    result = remove_expired(tmp_path, "items", 7, now=NOW)
    assert result == StagingCleanup(cutoff=NOW - timedelta(days=7), retention_days=7)
    assert result.to_dict()["kept_bytes"] == 0 and result.to_dict()["cutoff"] == "2026-11-22T03:00:00+00:00"


def test_retention_and_orphans_work_on_an_object_storage_path(tmp_path):
    from airflow.sdk import ObjectStoragePath

    folders = old_and_new_windows(tmp_path)
    root = ObjectStoragePath(f"file://{tmp_path}")
    write(folders["recent"] / ".batch-00001.parquet.dead.tmp", 11)
    assert remove_orphans(root / "items" / folders["recent"].name, 1) == [".batch-00001.parquet.dead.tmp"]
    result = remove_expired(root, "items", 7, now=NOW)
    assert result.removed_windows == (folders["snapshot"].name, folders["old"].name)
    assert (result.removed_files, result.removed_bytes, result.kept_files, result.kept_bytes) == (
        4, 5524, 4, 576)
    assert not folders["old"].exists() and folders["recent"].is_dir()


def test_the_staging_size_reads_in_binary_units():
    measured = datetime(2026, 11, 29, 3, 0, 5, tzinfo=timezone.utc)
    assert staging_text(12_900_000, 40, 7, measured) == (
        "staging: 12.3 MiB in 40 files, kept 7 days (measured 2026-11-29 03:00 UTC)")
    assert staging_text(0, 0, 1, None) == "staging: 0 B in 0 files, kept 1 day"
    assert staging_text(1536, 1, None, None) == "staging: 1.5 KiB in 1 file"


def test_the_page_shows_the_staging_size_of_a_table_and_nothing_before_a_cleanup():
    orders = TableView(make_pipeline("orders", ("id",)), staging=staging_text(3 * 1024 ** 3, 1200, 7, None))
    page = render([orders, TableView(make_pipeline("lines", ("id",)))])
    orders, lines = page.split('id="lines"', 1)
    assert '<p class="staging muted">staging: 3.0 GiB in 1,200 files, kept 7 days</p>' in orders
    assert "staging:" not in lines


def test_wide_rows_are_copied_in_record_batches_of_about_the_byte_bound():
    import pyarrow as pa

    from warehouse_sync.target.bulk_copy import COPY_ROWS, batch_rows

    table = pa.table({"body": ["x" * 10_000] * 100})
    assert batch_rows(table, None) == COPY_ROWS
    assert 4 <= batch_rows(table, 50_000) <= 5  # about 10 kB a row
    assert batch_rows(table, 1) == 1
