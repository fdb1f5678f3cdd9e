"""The per-run key check: deletes and lost keys found from the primary-key indexes alone, repaired by
the sync run that sees them; rows in flight and tombstones are not drift."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from helpers import T0, lines_pipeline, sync_window
from psycopg import sql

from warehouse_sync.db.catalog import describe_source
from warehouse_sync.db.statements import idents, load_sql, table_ident
from warehouse_sync.model import Window
from warehouse_sync.reconcile.keys import TOMBSTONES, check_keys, ensure_tombstone_index, key_hash

HOUR = timedelta(hours=1)
AS_OF = T0 + HOUR
UPTO = Window(None, AS_OF)  # rows before AS_OF


def check(source, warehouse, pipeline, leaf_rows=8, max_parts=4):
    """Small leaves and few parts per level, so that 1 200 keys are bisected over several levels."""
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    return check_keys(source, warehouse, pipeline, columns, UPTO, leaf_rows=leaf_rows, max_parts=max_parts)


def test_the_load_builds_the_tombstone_index_with_the_target(warehouse, synced):
    (name,) = warehouse.execute("SELECT to_regclass('t_dst.lines_tombstones_idx')::text").fetchone()
    warehouse.commit()
    assert name == "t_dst.lines_tombstones_idx"


def test_identical_key_sets_match_in_one_level(source, warehouse, synced):
    result = check(source, warehouse, synced)
    assert result.drift.total == 0 and result.comparison.matches and result.levels == 1
    assert result.comparison.source.rows == 1200 and result.leaf_keys == 0


def test_a_hard_delete_at_the_source_is_found_by_its_composite_key(source, warehouse, synced):
    source.execute("DELETE FROM t_src.lines WHERE (order_id, line) IN ((77, 2), (300, 4))")
    source.commit()
    result = check(source, warehouse, synced)
    assert result.drift.extra == [(77, 2), (300, 4)] and result.drift.missing == []
    assert not result.comparison.matches and result.levels >= 3  # it drilled down


def test_the_first_level_cuts_parts_of_four_leaves_and_a_second_level_cuts_the_differing_one_into_leaves(
        source, warehouse, synced):
    source.execute("DELETE FROM t_src.lines WHERE (order_id, line) = (77, 2)")
    source.commit()
    # 1 200 keys (order_id 1..300) in parts of about 4 leaves of 8 keys: 38 parts, one of which differs
    result = check(source, warehouse, synced, leaf_rows=8, max_parts=1 << 17)
    assert result.drift.extra == [(77, 2)] and result.levels == 2
    assert result.drift.segments == 38 + 4  # the differing part (32 keys) cut into 4 leaf-sized parts
    ((lo, hi),) = result.leaves
    assert lo <= 77 < hi and (hi - lo) * 4 <= 8 + 4  # one leaf of about 8 keys (4 lines per order)


def test_a_level_read_in_groups_finds_the_same_keys_with_no_more_rows_per_query_than_its_bound(
        source, warehouse, synced, monkeypatch):
    """A big table's first level is read a group of parts at a time: the task's memory does not grow with it."""
    from warehouse_sync.reconcile import keys

    source.execute("DELETE FROM t_src.lines WHERE (order_id, line) IN ((77, 2), (300, 4))")
    source.commit()
    returned: list[int] = []
    real = keys.query_both

    def counting(pool, a, b, name, parts, params):
        rows = real(pool, a, b, name, parts, params)
        if name == "reconcile/key_segments.sql":
            returned.append(max(len(rows[0]), len(rows[1])))
        return rows

    monkeypatch.setattr(keys, "query_both", counting)
    columns = describe_source(source, synced.source, synced.primary_key, synced.cursor)
    whole = check_keys(source, warehouse, synced, columns, UPTO, leaf_rows=8)
    in_one = returned[0]
    returned.clear()
    grouped = check_keys(source, warehouse, synced, columns, UPTO, leaf_rows=8, level_parts=5)
    assert in_one == 38 and max(returned) <= 5  # 1 200 keys in 38 first-level parts: 8 queries of at most 5
    assert grouped.drift.extra == whole.drift.extra == [(77, 2), (300, 4)] and grouped.drift.missing == []
    assert (grouped.comparison.source, grouped.comparison.warehouse) == (whole.comparison.source,
                                                                         whole.comparison.warehouse)
    assert grouped.levels == whole.levels and grouped.drift.segments == whole.drift.segments


def test_the_re_check_after_a_repair_reads_only_the_ranges_that_differed(source, warehouse, synced):
    source.execute("DELETE FROM t_src.lines WHERE (order_id, line) = (77, 2)")
    source.commit()
    found = check(source, warehouse, synced)
    columns = describe_source(source, synced.source, synced.primary_key, synced.cursor)
    again = check_keys(source, warehouse, synced, columns, UPTO, only=found.leaves)
    assert again.drift.extra == [(77, 2)] and again.levels == 0 and 0 < again.comparison.warehouse.rows <= 8
    warehouse.execute("UPDATE t_dst.lines SET _deleted_at = now() WHERE (order_id, line) = (77, 2)")
    warehouse.commit()
    repaired = check_keys(source, warehouse, synced, columns, UPTO, only=found.leaves)
    assert repaired.drift.total == 0 and repaired.comparison.matches


def test_a_key_only_in_the_warehouse_is_extra(source, warehouse, synced):
    warehouse.execute("INSERT INTO t_dst.lines (order_id, line, qty, note, updated_at) VALUES (5000, 1, 1, 'x', %s)",
                      (T0,))
    warehouse.commit()
    assert check(source, warehouse, synced).drift.extra == [(5000, 1)]


def test_a_key_lost_by_the_warehouse_is_missing(source, warehouse, synced):
    warehouse.execute("DELETE FROM t_dst.lines WHERE (order_id, line) = (10, 3)")
    warehouse.commit()
    result = check(source, warehouse, synced)
    assert result.drift.missing == [(10, 3)] and result.drift.extra == []


def test_rows_inserted_after_the_window_are_in_flight_not_missing(source, warehouse, synced):
    source.execute("INSERT INTO t_src.lines VALUES (150, 9, 1, 'late', %s), (9999, 1, 1, 'new', %s)",
                   (AS_OF, AS_OF + HOUR))
    source.commit()
    result = check(source, warehouse, synced)
    assert result.drift.total == 0 and result.comparison.matches and result.comparison.inflight == 2


def test_soft_deleted_warehouse_rows_are_not_counted_and_a_reappearing_key_is_missing(source, warehouse, synced):
    warehouse.execute("UPDATE t_dst.lines SET _deleted_at = now() WHERE order_id = 40")
    warehouse.commit()
    source.execute("DELETE FROM t_src.lines WHERE order_id = 40 AND line <> 1")
    source.commit()
    result = check(source, warehouse, synced)
    assert result.drift.missing == [(40, 1)] and result.drift.extra == []  # tombstones (40, 2..4) match


def test_a_sync_run_applies_a_delete_with_audit_and_drift_history(source, warehouse, synced, tmp_path):
    source.execute("DELETE FROM t_src.lines WHERE order_id = 123")  # an old order, outside the next window
    source.commit()
    result = sync_window(source, warehouse, synced, AS_OF, AS_OF + HOUR, tmp_path, run_id="run-2")["reconciled"]
    assert result["drift"]["extra"] == 4 and result["drift"]["repaired"] == 4
    assert [c["scope"] for c in result["comparisons"]] == ["window", "keys"] and result["comparisons"][1]["matches"]
    tombstones = warehouse.execute("SELECT count(*), min(_run_id) FROM t_dst.lines "
                                   "WHERE order_id = 123 AND _deleted_at IS NOT NULL").fetchone()
    assert tombstones == (4, "run-2")
    steps = warehouse.execute("SELECT step, status FROM warehouse_sync.audit WHERE run_id = 'run-2' "
                              "AND step LIKE 'reconcile%%' ORDER BY id").fetchall()
    assert steps == [("reconcile_window", "ok"), ("reconcile_keys", "drift"), ("reconcile_keys_after_repair", "ok")]
    history = warehouse.execute("SELECT scope, extra, repaired, refused FROM warehouse_sync.drift_history "
                                "WHERE run_id = 'run-2'").fetchall()
    assert history == [("window", 4, 4, False)]


def test_hard_delete_mode_deletes_the_row(source, warehouse, synced, tmp_path):
    pipeline = lines_pipeline(delete_mode="hard")
    source.execute("DELETE FROM t_src.lines WHERE order_id = 200")
    source.commit()
    sync_window(source, warehouse, pipeline, AS_OF, AS_OF + HOUR, tmp_path)
    assert warehouse.execute("SELECT count(*) FROM t_dst.lines WHERE order_id = 200").fetchone() == (0,)


def plan_nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


@pytest.mark.parametrize("statement", ["reconcile/key_segments.sql", "reconcile/key_rows.sql"])
def test_the_key_check_reads_only_key_indexes_never_the_heap(source, warehouse, synced, statement):
    """After VACUUM (the visibility map set) every scan of both tables is an Index Only Scan without one
    heap fetch: no column but the key is read."""
    warehouse.execute("UPDATE t_dst.lines SET _deleted_at = now() WHERE order_id = 7")
    warehouse.commit()
    ensure_tombstone_index(warehouse, synced)
    for conn, table, extra in ((source, "t_src.lines", sql.SQL("false")), (warehouse, "t_dst.lines", TOMBSTONES)):
        conn.autocommit = True
        conn.execute(f"VACUUM (ANALYZE) {table}")  # test-only SQL
        conn.autocommit = False
        for setting in ("enable_seqscan = off", "enable_bitmapscan = off", "enable_sort = off"):
            conn.execute(f"SET {setting}")
        query = load_sql(statement, table=table_ident(getattr(synced, "source" if conn is source else "target")),
                         extra=extra, k1=sql.Identifier("order_id"), keys=idents(synced.primary_key, "r"),
                         key_hash=key_hash(synced, describe_source(source, synced.source, synced.primary_key,
                                                                   synced.cursor)))
        params = {"los": [1, 100], "his": [50, 301], "parts": [4, 8]}
        (plan,) = conn.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + query, params).fetchone()
        conn.rollback()
        plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
        scans = [n for n in plan_nodes(plan["Plan"]) if "Relation Name" in n]
        assert scans, plan
        assert {n["Node Type"] for n in scans} == {"Index Only Scan"}, (table, scans)
        assert sum(n.get("Heap Fetches", 0) for n in scans) == 0, (table, scans)


@pytest.mark.parametrize("slicing", [{"key_check_slices": 4},
                                     {"key_check_slices": "auto", "key_check_slice_keys": 300}],
                         ids=["four slices", "auto: 1 200 rows at 300 keys a slice"])
def test_with_key_check_slices_a_delete_is_found_within_that_many_windows_each_reading_a_slice(
        source, warehouse, synced, tmp_path, slicing):
    from warehouse_sync.reconcile.slices import key_slice_of, slice_of_key

    pipeline = lines_pipeline(schedule="0 * * * *", **slicing)
    source.execute("DELETE FROM t_src.lines WHERE order_id = 250")  # an old order: no window reads it again
    source.execute("ANALYZE t_src.lines")  # auto reads the planner's row estimate
    source.commit()
    found_in, keys_read = None, []
    for k in range(4):
        start = AS_OF + k * HOUR
        reconciled = sync_window(source, warehouse, pipeline, start, start + HOUR, tmp_path, run_id=f"slice-{k}")[
            "reconciled"]
        keys = next(c for c in reconciled["comparisons"] if c["scope"] == "keys")
        keys_read.append(keys["source_rows"])
        if reconciled["drift"] and reconciled["drift"]["extra"]:
            assert found_in is None and reconciled["drift"]["extra"] == 4
            found_in = key_slice_of(start + HOUR, pipeline.schedule, 4)[0]
    assert found_in is not None, "four consecutive windows cover every key slice"
    assert slice_of_key(250, 1, 301, 4) == found_in, "the slice holding order 250 (of 1..300) found it"
    assert all(rows <= 1200 // 4 + 8 for rows in keys_read) and sum(keys_read) <= 1200, keys_read
    tombstones = warehouse.execute("SELECT count(*) FROM t_dst.lines WHERE order_id = 250 AND _deleted_at IS NOT NULL")
    assert tombstones.fetchone() == (4,)


def test_with_key_check_slices_every_delete_is_found_within_that_many_windows_while_keys_arrive_at_the_top(
        source, warehouse, synced, tmp_path):
    """The key range's top moves every window (new orders), as on any OLTP table: the four windows still
    compare every key once between them, so every order deleted before them is tombstoned by the fourth.
    (Four contiguous slices of each run's own range tombstoned 27 of them.)"""
    pipeline = lines_pipeline(schedule="0 * * * *", key_check_slices=4, repair_max_fraction=1.0)
    source.execute("DELETE FROM t_src.lines WHERE order_id % 10 = 0")  # 30 old orders, spread over the range
    source.commit()
    for k, top in enumerate((360, 420, 480, 510)):
        start = AS_OF + k * HOUR
        source.execute("INSERT INTO t_src.lines VALUES (%s, 1, 1, 'new', %s)", (top, start + timedelta(minutes=1)))
        source.commit()
        sync_window(source, warehouse, pipeline, start, start + HOUR, tmp_path, run_id=f"top-{k}")
    tombstoned = warehouse.execute(
        "SELECT count(DISTINCT order_id) FROM t_dst.lines WHERE _deleted_at IS NOT NULL").fetchone()[0]
    assert tombstoned == 30
