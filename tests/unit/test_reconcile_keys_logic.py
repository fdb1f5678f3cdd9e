"""The key check's pure decisions: how key ranges are cut, which parts are cut again or listed,
and what counts as missing, extra or in flight (no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from warehouse_sync.reconcile.keys import classify, live_keys
from warehouse_sync.reconcile.segments import (
    Segment,
    differing_parts,
    first_parts,
    next_level,
    segment_bounds,
    split_segments,
)


@pytest.mark.parametrize(("lo", "hi", "parts"), [(0, 100, 7), (5, 6, 1), (-50, 1_000_003, 32), (1, 4, 3)])
def test_segment_bounds_tile_the_range_and_agree_with_the_sql_part_expression(lo, hi, parts):
    segment = Segment(lo, hi, parts)
    bounds = [segment_bounds(segment, p) for p in range(parts)]
    assert bounds[0][0] == lo and bounds[-1][1] == hi
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    for key in list(range(lo, min(hi, lo + 300))) + list(range(max(lo, hi - 300), hi)):
        part = (key - lo) * parts // (hi - lo)  # key_segments.sql
        start, end = bounds[part]
        assert start <= key < end


def test_a_level_of_more_parts_than_one_query_may_return_is_read_in_groups_covering_the_same_keys():
    # the first level of a big table: one segment of 131 072 parts, at most 16 384 per query
    big = Segment(1, 600_000_001, 131_072)
    groups = split_segments([big], 16_384)
    assert len(groups) == 8 and all(len(g) == 1 and g[0].parts == 16_384 for g in groups)
    pieces = [g[0] for g in groups]
    assert pieces[0].lo == big.lo and pieces[-1].hi == big.hi
    assert all(a.hi == b.lo for a, b in zip(pieces, pieces[1:]))  # no key in two pieces or none
    # a later level's many small segments are packed into queries of at most that many parts
    small = [Segment(i * 100, i * 100 + 64, 3) for i in range(10)]
    packed = split_segments(small, 7)
    assert [len(g) for g in packed] == [2, 2, 2, 2, 2] and [s for g in packed for s in g] == small
    assert split_segments([], 7) == []


@pytest.mark.parametrize(("estimate", "expected"), [(0, 32), (-1, 32), (1000, 32), (6_000_000, 93_750),
                                                    (6_000_001, 93_751), (10**12, 1 << 17)])
def test_the_first_level_aims_at_parts_of_the_given_size_within_bounds(estimate, expected):
    assert first_parts(estimate, part_rows=64, max_parts=1 << 17) == expected


def test_matching_parts_are_dropped_small_ones_listed_and_big_ones_cut_again():
    segments = [Segment(0, 1000, 10), Segment(5000, 6000, 2)]
    source = {(1, 0): (100, 7), (1, 1): (100, 8), (1, 2): (10, 9), (2, 1): (400, 1)}
    warehouse = {(1, 0): (100, 7), (1, 1): (99, 3), (1, 2): (11, 9), (2, 1): (401, 2), (1, 9): (1, 5)}
    again, leaves = next_level(segments, source, warehouse, leaf_rows=32, max_parts=8)
    assert leaves == [(200, 300), (900, 1000)]  # part 2 (10 vs 11 keys) and part 9 (warehouse only)
    assert again == [Segment(100, 200, 4), Segment(5500, 6000, 8)]  # 100 keys / 32 -> 4 parts; capped at 8


def test_only_the_parts_that_differ_reach_the_next_level_and_every_part_is_counted_as_compared():
    # key_segments.sql rows (i, part, key count, key-hash sum as numeric)
    source = [(1, 0, 100, Decimal(7)), (1, 1, 100, Decimal(8)), (1, 2, 10, Decimal(9)), (2, 1, 400, Decimal(1))]
    warehouse = [(1, 0, 100, Decimal(7)), (1, 1, 99, Decimal(3)), (1, 2, 10, Decimal(9)), (2, 1, 400, Decimal(2)),
                 (1, 9, 1, Decimal(5))]
    a, b, compared = differing_parts(source, warehouse)
    assert a == {(1, 1): (100, 8), (2, 1): (400, 1)}
    assert b == {(1, 1): (99, 3), (2, 1): (400, 2), (1, 9): (1, 5)}
    assert compared == 5  # (1, 0), (1, 1), (1, 2), (2, 1) and (1, 9)
    segments = [Segment(0, 1000, 10), Segment(5000, 6000, 2)]
    full = ({(i, p): (n, int(h)) for i, p, n, h in source}, {(i, p): (n, int(h)) for i, p, n, h in warehouse})
    assert next_level(segments, a, b) == next_level(segments, *full)


def test_a_part_as_narrow_as_it_gets_is_a_leaf_whatever_its_count():
    again, leaves = next_level([Segment(10, 12, 1)], {(1, 0): (5000, 1)}, {}, leaf_rows=32)
    assert again == [] and leaves == [(10, 12)]


def test_tombstones_are_not_live_keys():
    rows = [(1, 1, 11, True), (1, 2, 12, True), (1, 2, 12, False), (2, 1, 21, True)]
    assert live_keys(rows) == {(1, 1): 11, (2, 1): 21}


def test_source_only_keys_in_flight_are_neither_missing_nor_extra():
    source = {(1,): 1, (2,): 2, (3,): 3}
    warehouse = {(1,): 1, (4,): 4}
    assert classify(source, warehouse, inflight={(3,)}) == ([(2,)], [(4,)])


def test_the_key_hash_chains_one_hash_per_key_column_integers_without_a_row_value():
    from warehouse_sync.config import Pipeline
    from warehouse_sync.db.catalog import Column
    from warehouse_sync.model import TableRef
    from warehouse_sync.reconcile.keys import key_hash

    pipeline = Pipeline(name="t", source=TableRef("s", "t"), target=TableRef("d", "t"), primary_key=("id", "code"),
                        cursor="updated_at")
    columns = [Column("id", "bigint", "int8", True), Column("code", "text", "text", True)]
    assert key_hash(pipeline, columns).as_string(None) == \
        'hash_record_extended(ROW("r"."code"), hashint8extended("r"."id"::int8, 0))'
