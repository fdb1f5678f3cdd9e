"""Load: COPY into staging, version-guarded merge; replays are no-ops; schema changes fail loudly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import (
    T0,
    create_items,
    create_lines,
    items_pipeline,
    lines_pipeline,
    simple_rows,
    sync_window,
    warehouse_rows,
)

from warehouse_sync.target.schema import SchemaChanged

HOUR = timedelta(hours=1)


def test_first_load_creates_target_with_same_columns_and_metadata(source, warehouse, tmp_path):
    create_items(source, simple_rows(5))
    result = sync_window(source, warehouse, items_pipeline(), T0, T0 + HOUR, tmp_path)
    assert result["loaded"]["merged"] == 5
    columns = warehouse.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 't_dst' AND table_name = 'items' ORDER BY ordinal_position").fetchall()
    names = [c[0] for c in columns]
    assert names[:9] == ["tenant", "id", "amount", "note", "flag", "born", "seen_at", "ratio", "updated_at"]
    assert names[9:] == ["_synced_at", "_run_id", "_deleted_at"]
    assert dict(columns)["amount"] == "numeric"


def test_replaying_a_window_changes_nothing(source, warehouse, tmp_path):
    create_items(source, simple_rows(7))
    pipeline = items_pipeline()
    sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path, run_id="first")
    before = warehouse_rows(warehouse, columns="tenant, id, amount, note, updated_at, _run_id")
    replay = sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path, run_id="replay")
    assert replay["loaded"]["staged"] == 7 and replay["loaded"]["merged"] == 0
    assert warehouse_rows(warehouse, columns="tenant, id, amount, note, updated_at, _run_id") == before


def test_an_older_version_never_overwrites_a_newer_one(source, warehouse, tmp_path):
    create_items(source, simple_rows(3))
    pipeline = items_pipeline()
    old_window = sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path, run_id="old", reconcile=False)
    # A refund lands later: the row moves to a later window with a new amount.
    source.execute("UPDATE t_src.items SET amount = -1, updated_at = %s WHERE id = 1", (T0 + 3 * HOUR,))
    source.commit()
    sync_window(source, warehouse, pipeline, T0 + 2 * HOUR, T0 + 4 * HOUR, tmp_path, run_id="new", reconcile=False)
    # Out-of-order apply: the old window's files are loaded again after the newer version.
    from warehouse_sync import tasks
    from warehouse_sync.run import Run
    old = old_window["result"]
    tasks.load(Run(pipeline, source, warehouse, "late-replay"), old.plan, old.extracted)
    row = warehouse.execute("SELECT amount, updated_at FROM t_dst.items WHERE id = 1").fetchone()
    assert row == (-1, T0 + 3 * HOUR)


def test_an_update_to_an_old_row_arrives_with_the_next_window(source, warehouse, tmp_path):
    """Syncing by created_at would miss this refund; the updated_at cursor carries it."""
    create_items(source, simple_rows(3))
    pipeline = items_pipeline()
    sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path)
    source.execute("UPDATE t_src.items SET amount = amount * -1, note = 'refund', updated_at = %s WHERE id = 0",
                   (T0 + HOUR + timedelta(minutes=5),))
    source.commit()
    result = sync_window(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path)
    assert result["loaded"]["merged"] == 1
    assert warehouse.execute("SELECT amount, note FROM t_dst.items WHERE id = 0").fetchone() == (-0.5, "refund")


def test_a_new_source_column_stops_the_load_and_names_the_column(source, warehouse, tmp_path):
    """Under ``schema_changes: freeze``; the other policies: ``test_schema_changes.py``."""
    create_items(source, simple_rows(2))
    pipeline = items_pipeline(schema_changes="freeze")
    sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path)
    source.execute("ALTER TABLE t_src.items ADD COLUMN currency char(3), ALTER COLUMN note TYPE varchar(20)")
    source.execute("UPDATE t_src.items SET currency = 'EUR', updated_at = %s", (T0 + HOUR,))
    source.commit()
    with pytest.raises(SchemaChanged) as info:
        sync_window(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path)
    message = str(info.value)
    assert "'currency' (character(3)) is new" in message and "'note' changed type" in message
    assert "t_src.items" in message and "full_snapshot" in message
    warehouse.rollback()
    assert warehouse.execute("SELECT count(*) FROM t_dst.items").fetchone() == (2,)


def test_a_warehouse_that_drifts_is_caught_by_the_next_run_and_repaired(source, warehouse, tmp_path):
    create_lines(source, orders=5)
    # 4 of 20 rows: within this small table's ceiling; a changed column outside the window is found by the
    # per-run whole-table check in full mode (the default key check leaves it to the daily reconcile)
    pipeline = lines_pipeline(repair_max_fraction=0.5, per_run_table_check="full")
    sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path)
    warehouse.execute("UPDATE t_dst.lines SET note = 'tampered' WHERE order_id = 2")
    warehouse.commit()
    result = sync_window(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path)
    table = [c for c in result["reconciled"]["comparisons"] if c["scope"] == "table"][0]
    assert table["matches"] and result["reconciled"]["drift"]["changed"] == 4
    assert warehouse.execute("SELECT count(*) FROM t_dst.lines WHERE note = 'tampered'").fetchone() == (0,)
    first = warehouse.execute("SELECT status FROM warehouse_sync.audit WHERE step = 'reconcile_table' "
                              "ORDER BY id DESC LIMIT 1").fetchone()
    assert first == ("drift",)  # the drift itself is on record, not only its repair


def test_a_snapshot_into_an_existing_empty_target_is_copied_straight_in_with_its_run_id(source, warehouse, tmp_path,
                                                                                        caplog):
    create_items(source, simple_rows(9))
    pipeline = items_pipeline()
    sync_window(source, warehouse, pipeline, T0 - 2 * HOUR, T0 - HOUR, tmp_path, run_id="empty")  # creates it, empty
    with caplog.at_level("INFO", logger="warehouse_sync.sync.load"):
        loaded = sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path, run_id="snap",
                             full_snapshot=True)["loaded"]
    assert loaded["staged"] == loaded["merged"] == 9
    assert "copied into the empty target" in caplog.text
    assert {r[-1] for r in warehouse_rows(warehouse, columns="tenant, id, _run_id")} == {"snap"}
    caplog.clear()
    with caplog.at_level("INFO", logger="warehouse_sync.sync.load"):  # not empty any more: staged and merged
        again = sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path, run_id="again",
                            full_snapshot=True)["loaded"]
    assert again["merged"] == 0 and "copied into the empty target" not in caplog.text


OTHER_TYPES_DDL = """
CREATE TABLE t_src.docs (id bigint PRIMARY KEY, u uuid, j json, jb jsonb, t time, amount numeric,
                         updated_at timestamptz NOT NULL);
"""


@pytest.mark.parametrize("full_snapshot", [True, False], ids=["copied into empty target", "staged and merged"])
def test_types_without_a_binary_encoding_load_exactly_through_csv(source, warehouse, tmp_path, full_snapshot):
    from helpers import make_pipeline

    from warehouse_sync.db.catalog import describe_source
    from warehouse_sync.target.bulk_copy import binary_ready

    source.execute(OTHER_TYPES_DDL)
    source.execute("INSERT INTO t_src.docs VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"b\": [1, 2]}', "
                   "'{\"x\": \"y\"}', '13:14:15.123456', 123456789012345678901234567890.123456789, %s), "
                   "(2, NULL, NULL, NULL, NULL, NULL, %s)", [T0, T0 + timedelta(seconds=1)])
    source.commit()
    pipeline = make_pipeline("docs", ("id",))
    assert not binary_ready(describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor))
    sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path, full_snapshot=full_snapshot)
    columns = "id, u::text, j::text, jb::text, t::text, amount::text, updated_at"
    expected = source.execute(f"SELECT {columns} FROM t_src.docs ORDER BY id").fetchall()
    assert warehouse_rows(warehouse, "t_dst.docs", columns) == expected


def test_binary_copy_needs_an_exact_encoding_for_every_column(source):
    from warehouse_sync.db.catalog import describe_source
    from warehouse_sync.target.bulk_copy import binary_ready

    create_items(source, simple_rows(1))
    pipeline = items_pipeline()
    assert binary_ready(describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor))


def test_a_load_that_changes_under_a_tenth_of_the_target_leaves_its_statistics_to_autovacuum(source, warehouse,
                                                                                                tmp_path, caplog):
    create_items(source, simple_rows(40))
    pipeline = items_pipeline(batch_size=100, page_size=100)
    with caplog.at_level("INFO", logger="warehouse_sync"):
        sync_window(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path, run_id="first")
    assert "left to autovacuum" not in caplog.text  # a new target: analyzed
    analyzed = warehouse.execute("SELECT reltuples FROM pg_class WHERE oid = 't_dst.items'::regclass").fetchone()
    assert analyzed == (40,)
    caplog.clear()
    source.execute("UPDATE t_src.items SET note = 'changed', updated_at = %s WHERE id < 3", (T0 + HOUR,))
    source.commit()
    with caplog.at_level("INFO", logger="warehouse_sync"):
        loaded = sync_window(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path, run_id="small")["loaded"]
    assert loaded["merged"] == 3 and "3 rows changed of about 40: statistics left to autovacuum" in caplog.text
