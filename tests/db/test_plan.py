"""Keyset batch planning against real PostgreSQL: exact boundaries, ties, composite keys, JSON round trip."""

from __future__ import annotations

from datetime import timedelta

from helpers import T0, create_items, create_lines, items_pipeline, lines_pipeline, simple_rows
from psycopg import sql

from warehouse_sync.db.statements import idents, table_ident
from warehouse_sync.model import Batch, Window
from warehouse_sync.sync.keyset import batch_filter
from warehouse_sync.sync.plan import plan_batches

# Test-only SQL: the keys of the rows a batch filter selects.
BATCH_KEYS = sql.SQL("SELECT {keys} FROM {table} WHERE {window}")


def rows_of(conn, pipeline, window, batch):
    where, params = batch_filter(pipeline, window, batch)
    query = BATCH_KEYS.format(keys=idents(pipeline.primary_key), table=table_ident(pipeline.source), window=where)
    result = conn.execute(query, params).fetchall()
    conn.commit()
    return result


def test_batches_have_at_most_batch_size_rows_and_cover_the_window_exactly_once(source):
    create_items(source, simple_rows(10))
    pipeline = items_pipeline(batch_size=3)
    window = Window(T0, T0 + timedelta(hours=1))
    batches = plan_batches(source, pipeline, window)
    sizes = [len(rows_of(source, pipeline, window, b)) for b in batches]
    assert sizes == [3, 3, 3, 1]
    keys = [k for b in batches for k in rows_of(source, pipeline, window, b)]
    assert sorted(keys) == [("a", i) for i in range(10)] and len(set(keys)) == 10


def test_ties_on_the_cursor_are_split_by_the_primary_key(source):
    same_time = [("a", i, "1", None, None, None, None, None, T0) for i in range(5)]
    same_time += [("b", i, "1", None, None, None, None, None, T0) for i in range(2)]
    create_items(source, same_time)
    pipeline = items_pipeline(batch_size=2)
    window = Window(T0, T0 + timedelta(minutes=1))
    batches = plan_batches(source, pipeline, window)
    assert len(batches) == 4
    assert batches[1].lower[1:] == ("a", "2")  # (cursor, tenant, id) as text; boundary inside the tie
    keys = [k for b in batches for k in rows_of(source, pipeline, window, b)]
    assert sorted(keys) == sorted((r[0], r[1]) for r in same_time)


def test_empty_window_plans_no_batches(source):
    create_items(source, simple_rows(3))
    assert plan_batches(source, items_pipeline(), Window(T0 - timedelta(hours=2), T0)) == []


def test_single_row_window_is_one_unbounded_batch(source):
    create_items(source, simple_rows(1))
    assert plan_batches(source, items_pipeline(), Window(T0, T0 + timedelta(hours=1))) == [Batch(0, None, None)]


def test_window_is_half_open(source):
    create_items(source, simple_rows(3, step=timedelta(hours=1)))  # at T0, T0+1h, T0+2h
    pipeline = items_pipeline(batch_size=100)
    window = Window(T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    (batch,) = plan_batches(source, pipeline, window)
    assert rows_of(source, pipeline, window, batch) == [("a", 1)]


def test_batch_boundaries_survive_a_json_round_trip(source):
    create_items(source, simple_rows(7))
    pipeline = items_pipeline(batch_size=2)
    window = Window(T0, T0 + timedelta(hours=1))
    for batch in plan_batches(source, pipeline, window):
        assert Batch.from_dict(batch.to_dict()) == batch
    assert Window.from_dict(window.to_dict()) == window




def test_a_snapshot_of_an_analyzed_integer_key_is_cut_from_the_key_range_and_still_covers_every_row_once(source):
    create_lines(source, orders=300, lines_per_order=4)  # order_id 1..300, 1 200 rows
    source.execute("ANALYZE t_src.lines")
    source.commit()
    pipeline = lines_pipeline(snapshot_batch_size=300)
    window = Window(None, T0 + timedelta(days=30))
    batches = plan_batches(source, pipeline, window)
    sizes = [len(rows_of(source, pipeline, window, b)) for b in batches]
    assert len(batches) == 4 and all(250 <= s <= 350 for s in sizes)  # an even key: even batches
    assert batches[1].lower[1] == "1"  # a cut lands on the first line of an order: a whole key, as text
    keys = [k for b in batches for k in rows_of(source, pipeline, window, b)]
    assert len(keys) == len(set(keys)) == 1200


def test_a_snapshot_of_a_never_analyzed_table_counts_its_rows_and_is_cut_from_the_key_range(source):
    create_lines(source, orders=10, lines_per_order=3)
    (estimate,) = source.execute("SELECT reltuples FROM pg_class WHERE oid = 't_src.lines'::regclass").fetchone()
    source.commit()
    assert estimate < 0  # no ANALYZE: no estimate to cut from
    pipeline = lines_pipeline(snapshot_batch_size=7)
    window = Window(None, T0 + timedelta(days=30))
    batches = plan_batches(source, pipeline, window)
    sizes = [len(rows_of(source, pipeline, window, b)) for b in batches]
    assert sizes == [6, 6, 6, 6, 6]  # 30 counted rows, 5 equal ranges of the 10 orders' keys: whole orders
    keys = [k for b in batches for k in rows_of(source, pipeline, window, b)]
    assert len(keys) == len(set(keys)) == 30


def test_a_window_that_needs_more_batches_than_airflow_may_map_gets_fewer_bigger_ones(source, caplog):
    create_lines(source)  # 1 200 rows
    pipeline = lines_pipeline(batch_size=100)
    window = Window(T0, T0 + timedelta(hours=1))
    assert len(plan_batches(source, pipeline, window)) == 12
    batches = plan_batches(source, pipeline, window, max_batches=5)
    assert len(batches) <= 5 and "max_map_length" in caplog.text
    keys = [k for b in batches for k in rows_of(source, pipeline, window, b)]
    assert len(keys) == len(set(keys)) == 1200  # every row exactly once


def test_a_snapshot_cut_from_the_key_range_is_capped_the_same_way(source):
    create_lines(source)
    source.execute("ANALYZE t_src.lines")
    source.commit()
    pipeline = lines_pipeline(snapshot_batch_size=50)
    window = Window(None, T0 + timedelta(hours=2))
    assert len(plan_batches(source, pipeline, window)) > 5
    batches = plan_batches(source, pipeline, window, max_batches=5)
    keys = [k for b in batches for k in rows_of(source, pipeline, window, b)]
    assert len(batches) <= 5 and len(keys) == len(set(keys)) == 1200
