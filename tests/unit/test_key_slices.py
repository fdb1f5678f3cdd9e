"""Key check slices: how many a window's key check rotates through, and which one it compares."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from warehouse_sync.reconcile.slices import found_within, key_slice_of, slice_count

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
