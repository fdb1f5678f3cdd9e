"""Snapshot build table: a first snapshot is copied into the warehouse by its extracts and renamed to the target."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from helpers import T0, create_items, items_pipeline, simple_rows, sync_window, warehouse_rows

from warehouse_sync import tasks
from warehouse_sync.model import RunStart
from warehouse_sync.run import Run
from warehouse_sync.sync import extract as extract_module

HOUR = timedelta(hours=1)
SNAPSHOT = RunStart.scheduled(T0, T0 + HOUR, True)


def exists(warehouse, name: str) -> bool:
    (found,) = warehouse.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    warehouse.commit()
    return found


def build_rows(warehouse) -> list[tuple]:
    rows = warehouse.execute("SELECT tenant, id, _run_id FROM t_dst._ws_build_items ORDER BY 1, 2").fetchall()
    warehouse.commit()
    return rows


def plan_and_extract(source, warehouse, pipeline, root: Path, run_id: str = "snap"):
    run = Run(pipeline, source, warehouse, run_id)
    planned = tasks.plan(run, SNAPSHOT)
    return planned, [tasks.extract(run, planned, b, root=root) for b in planned.batches]


def load(source, warehouse, pipeline, planned, files, run_id: str = "snap"):
    return tasks.load(Run(pipeline, source, warehouse, run_id), planned, files, open_path=Path)


def test_a_first_snapshot_is_copied_by_its_extracts_into_a_build_table_that_the_load_renames_to_the_target(
        source, warehouse, tmp_path):
    create_items(source, simple_rows(9))
    pipeline = items_pipeline(snapshot_batch_size=3)
    planned, files = plan_and_extract(source, warehouse, pipeline, tmp_path)
    assert len(planned.batches) == 3
    assert not exists(warehouse, "t_dst.items")  # nobody sees a half-loaded target
    assert len(build_rows(warehouse)) == 9 and {r[2] for r in build_rows(warehouse)} == {"snap"}
    loaded = load(source, warehouse, pipeline, planned, files)
    assert loaded.staged == loaded.merged == 9
    assert not exists(warehouse, "t_dst._ws_build_items")
    assert [r[:2] for r in warehouse_rows(warehouse)] == [r[:2] for r in simple_rows(9)]
    indexes = {r[0] for r in warehouse.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 't_dst' AND tablename = 'items'").fetchall()}
    assert indexes == {"items_pkey", "items_tombstones_idx", "items_updated_at_idx"}
    default = warehouse.execute("SELECT column_default FROM information_schema.columns WHERE table_schema = 't_dst' "
                                "AND table_name = 'items' AND column_name = '_run_id'").fetchone()
    assert default == (None,)
    reconciled = tasks.reconcile(Run(pipeline, source, warehouse, "snap"), planned)
    assert all(c.matches for c in reconciled.comparisons)


def test_a_retried_snapshot_extract_replaces_its_batch_in_the_build_table_instead_of_adding_it_again(
        source, warehouse, tmp_path):
    create_items(source, simple_rows(9))
    pipeline = items_pipeline(snapshot_batch_size=3)
    planned, files = plan_and_extract(source, warehouse, pipeline, tmp_path)
    again = tasks.extract(Run(pipeline, source, warehouse, "snap"), planned, planned.batches[1], root=tmp_path)
    assert again.rows == 3 and len(build_rows(warehouse)) == 9
    assert load(source, warehouse, pipeline, planned, files).merged == 9
    assert len(warehouse_rows(warehouse)) == 9 and not exists(warehouse, "t_dst._ws_build_items")


def test_a_snapshot_extract_that_fails_midway_leaves_no_rows_in_the_build_table_and_its_retry_loads_all(
        source, warehouse, tmp_path, monkeypatch):
    create_items(source, simple_rows(9))
    pipeline = items_pipeline(snapshot_batch_size=3)
    run = Run(pipeline, source, warehouse, "snap")
    planned = tasks.plan(run, SNAPSHOT)
    real = extract_module.read_pages

    def dies_after_one_page(*args, **kwargs):
        pages = real(*args, **kwargs)
        yield next(pages)
        raise ConnectionError("source went away")

    monkeypatch.setattr(extract_module, "read_pages", dies_after_one_page)
    with pytest.raises(ConnectionError):
        tasks.extract(run, planned, planned.batches[0], root=tmp_path)
    assert build_rows(warehouse) == []
    monkeypatch.setattr(extract_module, "read_pages", real)
    files = [tasks.extract(run, planned, b, root=tmp_path) for b in planned.batches]
    assert load(source, warehouse, pipeline, planned, files).merged == 9
    assert len(warehouse_rows(warehouse)) == 9


def test_another_runs_build_table_is_neither_filled_nor_renamed(source, warehouse, tmp_path, caplog):
    create_items(source, simple_rows(9))
    pipeline = items_pipeline(snapshot_batch_size=3)
    planned = tasks.plan(Run(pipeline, source, warehouse, "earlier"), SNAPSHOT)
    later = Run(pipeline, source, warehouse, "later")
    files = [tasks.extract(later, planned, b, root=tmp_path) for b in planned.batches]
    assert build_rows(warehouse) == []
    with caplog.at_level("INFO", logger="warehouse_sync.sync.load"):
        assert load(source, warehouse, pipeline, planned, files, run_id="later").merged == 9
    assert "copied into the empty target" in caplog.text  # from the files, as before build tables
    assert {r[-1] for r in warehouse_rows(warehouse, columns="tenant, id, _run_id")} == {"later"}


def test_a_target_created_after_the_plan_gets_the_snapshot_from_its_files_and_the_build_table_is_dropped(
        source, warehouse, tmp_path):
    create_items(source, simple_rows(9))
    pipeline = items_pipeline(snapshot_batch_size=3)
    planned, files = plan_and_extract(source, warehouse, pipeline, tmp_path)
    sync_window(source, warehouse, pipeline, T0 - 2 * HOUR, T0 - HOUR, tmp_path / "other", run_id="other")
    assert exists(warehouse, "t_dst.items")
    assert load(source, warehouse, pipeline, planned, files).merged == 9
    assert len(warehouse_rows(warehouse)) == 9 and not exists(warehouse, "t_dst._ws_build_items")


def test_a_full_snapshot_of_a_loaded_target_stages_and_merges_without_a_build_table(source, warehouse, tmp_path):
    create_items(source, simple_rows(9))
    pipeline = items_pipeline(snapshot_batch_size=3)
    sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path, run_id="first", full_snapshot=True)
    result = sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path, run_id="again", full_snapshot=True)
    assert result["planned"]["batches"] and not exists(warehouse, "t_dst._ws_build_items")
    assert result["loaded"]["merged"] == 0 and result["loaded"]["staged"] == 9


def test_a_snapshot_into_a_target_whose_old_table_was_renamed_aside_builds_and_its_retry_too(
        source, warehouse, tmp_path):
    """The renamed table keeps the index names a build would use; the build must not fail on them, twice."""
    create_items(source, simple_rows(9))
    pipeline = items_pipeline(snapshot_batch_size=3)
    sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path / "first", run_id="first", full_snapshot=True)
    warehouse.execute("ALTER TABLE t_dst.items RENAME TO items_old")
    warehouse.commit()
    plan_and_extract(source, warehouse, pipeline, tmp_path / "attempt", run_id="snap")  # an attempt that stops here
    planned, files = plan_and_extract(source, warehouse, pipeline, tmp_path / "retry", run_id="snap")  # its retry
    assert load(source, warehouse, pipeline, planned, files).merged == 9
    assert not exists(warehouse, "t_dst._ws_build_items")
    assert [r[:2] for r in warehouse_rows(warehouse)] == [r[:2] for r in simple_rows(9)]
    indexes = warehouse.execute(
        "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 't_dst' ORDER BY 1, 2").fetchall()
    warehouse.commit()
    mine = [d for t, d in indexes if t == "items"]
    assert len(mine) == 3 and any("UNIQUE" in d and "(tenant, id)" in d for d in mine), indexes
    assert any("(updated_at)" in d for d in mine) and any("_deleted_at IS NOT NULL" in d for d in mine), indexes
    assert len([t for t, _ in indexes if t == "items_old"]) == 3, "the renamed table keeps its indexes"
