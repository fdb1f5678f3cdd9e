"""Which cursor window a run reads (lookback, late horizon, snapshot) and the SQL predicates of a
window and a keyset batch: pure logic, no database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from warehouse_sync.config import Pipeline
from warehouse_sync.model import Batch, TableRef, Window
from warehouse_sync.sync.plan import batch_filter, effective_window, keyset_columns, window_filter

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
START, END = T0, T0 + timedelta(hours=2)


def pipeline(**settings) -> Pipeline:
    return Pipeline(name="items", source=TableRef("t_src", "items"), target=TableRef("t_dst", "items"),
                    primary_key=("tenant", "id"), cursor="updated_at", **settings)


def test_the_window_is_the_data_interval_when_nothing_is_pending():
    assert effective_window(pipeline(), START, END, None, False) == Window(START, END)


def test_the_lookback_widens_the_window_start_back_but_never_its_end():
    assert effective_window(pipeline(lookback_minutes=15), START, END, None, False) == \
        Window(START - timedelta(minutes=15), END)


def test_a_late_horizon_before_the_start_makes_the_run_re_read_from_it(caplog):
    horizon = START - timedelta(hours=3, seconds=1)
    with caplog.at_level("INFO", logger="warehouse_sync.sync.plan"):
        assert effective_window(pipeline(), START, END, horizon, False) == Window(horizon, END)
    assert "re-reading from late horizon" in caplog.text


def test_a_late_horizon_inside_the_lookback_changes_nothing():
    horizon = START - timedelta(minutes=5)
    assert effective_window(pipeline(lookback_minutes=15), START, END, horizon, False) == \
        Window(START - timedelta(minutes=15), END)


def test_a_full_snapshot_is_unbounded_below_whatever_the_lookback_or_horizon():
    window = effective_window(pipeline(lookback_minutes=15), START, END, START - timedelta(days=1), True)
    assert window == Window(None, END) and window.is_snapshot


def test_a_window_is_read_in_cursor_then_key_order_and_a_snapshot_in_key_order():
    assert keyset_columns(pipeline(), Window(START, END)) == ("updated_at", "tenant", "id")
    assert keyset_columns(pipeline(), Window(None, END)) == ("tenant", "id")


def test_the_window_predicate_is_half_open_and_a_snapshot_has_no_lower_bound():
    clause, params = window_filter("updated_at", Window(START, END), "r")
    assert clause.as_string(None) == '"r"."updated_at" >= %(window_start)s AND "r"."updated_at" < %(window_end)s'
    assert params == {"window_start": START, "window_end": END}
    clause, params = window_filter("updated_at", Window(None, END))
    assert clause.as_string(None) == '"updated_at" < %(window_end)s' and params == {"window_end": END}


def test_a_batch_predicate_bounds_the_keyset_row_only_where_the_batch_has_a_bound():
    window = Window(START, END)
    first, first_params = batch_filter(pipeline(), window, Batch(0, None, ("t", "a", "3")))
    middle, params = batch_filter(pipeline(), window, Batch(1, ("t", "a", "3"), ("u", "b", "1")))
    only, only_params = batch_filter(pipeline(), window, Batch(0, None, None))
    assert "lower_" not in first.as_string(None) and "%(upper_0)s" in first.as_string(None)
    assert not any(k.startswith("lower_") for k in first_params)
    assert only.as_string(None) == window_filter("updated_at", window)[0].as_string(None)
    assert only_params == {"window_start": START, "window_end": END}
    keyset = '("updated_at", "tenant", "id")'
    assert f"{keyset} >= (%(lower_0)s, %(lower_1)s, %(lower_2)s)" in middle.as_string(None)
    assert f"{keyset} < (%(upper_0)s, %(upper_1)s, %(upper_2)s)" in middle.as_string(None)
    assert params["lower_1"] == "a" and params["upper_2"] == "1"
