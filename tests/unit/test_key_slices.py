"""Key check slices: how many a window's key check rotates through, and which one it compares."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from warehouse_sync.reconcile.slices import (
    found_within,
    key_slice_of,
    slice_count,
    slice_of_key,
    slice_ranges,
    stripe_width,
    stripe_widths,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TWO_HOURLY = "0 */2 * * *"


def test_consecutive_windows_take_consecutive_key_slices():
    ends = [T0 + k * timedelta(hours=2) for k in range(12)]
    slices = [key_slice_of(end, TWO_HOURLY, 12) for end in ends]
    assert sorted(i for i, _ in slices) == list(range(12)) and {n for _, n in slices} == {12}
    assert key_slice_of(T0, TWO_HOURLY, 1) == (0, 1)


def test_a_retried_window_checks_the_same_slice_again():
    end = T0 + timedelta(hours=6)
    assert key_slice_of(end, TWO_HOURLY, 8) == key_slice_of(end, TWO_HOURLY, 8)


@pytest.mark.parametrize(("rows", "slices"), [
    (None, 1), (-1.0, 1), (0.0, 1), (1_500_000.0, 1), (4_000_000.0, 1),  # up to 4 M keys: every key, every run
    (6_001_215.0, 2), (15_000_000.0, 4), (17_996_609.0, 8),  # TPC-H SF 1 lineitem, SF 10 orders, SF 3 lineitem
    (59_986_052.0, 12), (600_000_000.0, 12),  # SF 10 lineitem and beyond: a day's windows, no more
])
def test_auto_keeps_a_slice_within_four_million_keys_and_never_takes_more_than_a_day(rows, slices):
    assert slice_count("auto", rows, TWO_HOURLY, T0) == slices
    assert found_within(slices, TWO_HOURLY, T0) <= timedelta(days=1)


def test_auto_follows_the_schedule_and_a_count_is_taken_as_set():
    assert slice_count("auto", 59_986_052.0, "@hourly", T0) == 16
    assert slice_count("auto", 59_986_052.0, "@daily", T0) == 1  # one window a day: the whole range
    assert slice_count("auto", 1_000.0, "0 * * * *", T0, slice_keys=300) == 4
    assert slice_count(3, 10.0, TWO_HOURLY, T0) == 3 and slice_count(1, 1e9, TWO_HOURLY, T0) == 1


def test_a_delete_waits_at_most_its_slices_windows_and_never_more_than_a_day():
    assert found_within(1, TWO_HOURLY, T0) == timedelta(hours=2)
    assert found_within(8, TWO_HOURLY, T0) == timedelta(hours=16)
    assert found_within(48, "@hourly", T0) == timedelta(days=1)


def test_a_manual_run_between_two_ticks_checks_the_slice_of_the_tick_before_it():
    tick = T0 + timedelta(hours=6)
    for offset in (timedelta(seconds=1), timedelta(minutes=37), timedelta(hours=1, minutes=59)):
        assert key_slice_of(tick + offset, TWO_HOURLY, 8) == key_slice_of(tick, TWO_HOURLY, 8)
    assert key_slice_of(tick + timedelta(hours=2), TWO_HOURLY, 8)[0] == (key_slice_of(tick, TWO_HOURLY, 8)[0] + 1) % 8


def test_auto_counts_a_days_windows_from_the_schedule_not_from_a_manual_runs_end():
    between = T0 + timedelta(hours=6, minutes=1)
    assert slice_count("auto", 59_986_052.0, TWO_HOURLY, between) == 12
    assert found_within(12, TWO_HOURLY, between) == timedelta(days=1)


def covered(lo: int, hi: int, slices: int) -> list[int]:
    """Each key of ``[lo, hi)`` once per slice whose ranges hold it."""
    return sorted(k for i in range(slices) for a, b in slice_ranges(lo, hi, (i, slices)) for k in range(a, b))


@pytest.mark.parametrize(("lo", "hi", "slices"), [(1, 301, 4), (0, 10_000, 12), (-5_000, 7_919, 8), (7, 9, 4),
                                                 (1, 2, 3)])
def test_the_slices_of_one_key_range_cover_every_key_exactly_once(lo, hi, slices):
    assert covered(lo, hi, slices) == list(range(lo, hi))
    for i in range(slices):
        assert all(slice_of_key(k, lo, hi, slices) == i for a, b in slice_ranges(lo, hi, (i, slices))
                   for k in range(a, b))


def test_a_keys_slice_stays_put_when_keys_are_added_at_the_top_or_deleted_at_the_bottom():
    """Contiguous slices would move with the range's ends and leave a gap between two windows."""
    n, keys = 12, range(100_000, 160_000, 7)
    before = {k: slice_of_key(k, 100_000, 160_000, n) for k in keys}
    for lo, hi in [(100_000, 175_000), (110_000, 160_000), (130_000, 185_000)]:  # grown, shrunk, moved
        assert stripe_width(hi - lo, n) == stripe_width(60_000, n)
        assert {k: slice_of_key(k, lo, hi, n) for k in keys if lo <= k < hi} == \
            {k: i for k, i in before.items() if lo <= k < hi}


def test_consecutive_windows_cover_every_key_while_the_range_grows_each_window():
    n, lo, hi, seen = 12, 1, 60_000_001, set()
    for k in range(n):  # a window's slice, the top 1 M keys higher each window
        seen.update(slice_ranges(lo, hi + k * 1_000_000, (k, n)))
    at = lo
    for a, b in sorted(seen):
        if at >= hi:  # keys added since are compared from the next round on
            break
        assert a <= at, f"keys [{at}, {a}) were in no window's slice"
        at = max(at, b)
    assert at >= hi


def test_slices_are_even_and_made_of_sixteen_to_about_thirty_two_stripes():
    lo, hi, n = 1, 59_986_053, 12  # SF 10 lineitem's order keys
    widths = [sum(b - a for a, b in slice_ranges(lo, hi, (i, n))) for i in range(n)]
    width = stripe_width(hi - lo, n)
    assert max(widths) - min(widths) <= width and sum(widths) == hi - lo
    assert all(16 <= len(slice_ranges(lo, hi, (i, n))) <= 33 for i in range(n))
    assert slice_ranges(lo, hi, (0, 1)) == [(lo, hi)] and slice_ranges(5, 5, (0, 4)) == []


def test_a_range_hovering_at_a_width_boundary_reads_both_widths_so_a_flipping_width_leaves_no_gap():
    """A table that deletes old keys as fast as it adds new ones keeps its range near one size; across a
    power-of-two boundary its stripe width would flip from window to window and move keys between slices."""
    n, spans = 4, [500, 530, 500, 530]  # share 7.8 and 8.3 of a 64-stripe round: widths 4 and 8
    assert {stripe_width(span, n) for span in spans} == {4, 8}
    assert set(stripe_widths(500, n)) == set(stripe_widths(530, n)) == {4, 8}

    def uncovered(ranges_of) -> set[int]:
        seen = {k for i, span in enumerate(spans) for a, b in ranges_of(span, i) for k in range(a, b)}
        return set(range(0, 500)) - seen

    assert uncovered(lambda span, i: slice_ranges(0, span, (i, n))) == set()
    one_width = uncovered(lambda span, i: [(j * stripe_width(span, n), (j + 1) * stripe_width(span, n))
                                           for j in range(i, span // stripe_width(span, n) + 1, n)])
    assert one_width, "with one width per window the flip leaves keys in no window's slice"
    assert stripe_widths(60_000, 12) == (256,) and len(stripe_widths(50_000, 12)) == 2
