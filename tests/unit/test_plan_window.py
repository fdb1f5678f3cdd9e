"""Which cursor window a run reads (how it started, first run, lookback, late horizon, snapshot) and the SQL predicates
of a window and a keyset batch: pure logic, no database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from warehouse_sync.config import SYNC_SCHEDULE, Pipeline
from warehouse_sync.db.statements import window_filter
from warehouse_sync.model import Batch, RunStart, TableRef, Window
from warehouse_sync.sync.keyset import batch_filter, keyset_columns
from warehouse_sync.sync.plan import run_window

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
START, END = T0, T0 + timedelta(hours=2)


def pipeline(**settings) -> Pipeline:
    return Pipeline(name="items", source=TableRef("t_src", "items"), target=TableRef("t_dst", "items"),
                    primary_key=("tenant", "id"), cursor="updated_at", **settings)


SCHEDULE = SYNC_SCHEDULE
WATERMARK = START  # the previous run loaded up to this run's start


def window(p=None, run=None, watermark=WATERMARK, horizon=None) -> Window:
    return run_window(p or pipeline(), SCHEDULE, run or RunStart.scheduled(START, END), watermark, horizon)[0]


def test_the_window_is_the_data_interval_when_nothing_is_pending():
    assert window() == Window(START, END)


def test_the_lookback_widens_the_window_start_back_but_never_its_end():
    assert window(pipeline(lookback_minutes=15)) == Window(START - timedelta(minutes=15), END)


def test_a_late_horizon_before_the_start_makes_the_run_re_read_from_it(caplog):
    horizon = START - timedelta(hours=3, seconds=1)
    with caplog.at_level("INFO", logger="warehouse_sync.sync.plan"):
        assert window(horizon=horizon) == Window(horizon, END)
    assert "re-reading from late horizon" in caplog.text


def test_a_late_horizon_inside_the_lookback_changes_nothing():
    horizon = START - timedelta(minutes=5)
    assert window(pipeline(lookback_minutes=15), horizon=horizon) == Window(START - timedelta(minutes=15), END)


def test_a_full_snapshot_is_unbounded_below_whatever_the_lookback_or_horizon():
    run = RunStart.scheduled(START, END, full_snapshot=True)
    got = window(pipeline(lookback_minutes=15), run, horizon=START - timedelta(days=1))
    assert got == Window(None, END) and got.is_snapshot


def test_the_first_run_of_a_pipeline_with_no_sync_state_is_a_snapshot_to_its_window_end():
    got, why = run_window(pipeline(), SCHEDULE, RunStart.scheduled(START, END), None, None)
    assert got == Window(None, END) and "initial load" in why


def test_with_initial_load_window_the_first_run_reads_only_its_own_window():
    assert window(pipeline(initial_load="window"), watermark=None) == Window(START, END)


def test_a_manual_run_with_a_logical_date_syncs_the_data_interval_airflow_gave_it():
    # `airflow dags trigger -l L` at a later time: Airflow's interval is the one that ends at L (the UI shows it).
    run = RunStart(logical_date=END, interval_start=START, interval_end=END,
                   run_after=END + timedelta(hours=1, minutes=52), manual=True)
    got, why = run_window(pipeline(), SCHEDULE, run, WATERMARK, None)
    assert got == Window(START, END) and why == "the data interval"


def test_the_trigger_forms_run_with_logical_date_now_syncs_its_data_interval_never_past_the_trigger_time():
    # The Trigger form fills the logical date with now; Airflow gives the last complete interval before it.
    trigger = END + timedelta(minutes=20)
    run = RunStart(logical_date=trigger, interval_start=START, interval_end=END, run_after=trigger, manual=True)
    assert window(run=run) == Window(START, END)


def test_a_manual_data_interval_that_ends_after_the_trigger_time_is_cut_at_the_trigger_time():
    trigger = START + timedelta(minutes=20)
    run = RunStart(logical_date=START, interval_start=START, interval_end=END, run_after=trigger, manual=True)
    got, why = run_window(pipeline(), SCHEDULE, run, WATERMARK, None)
    assert got == Window(START, trigger) and "trigger time" in why


def test_a_run_without_a_logical_date_syncs_from_the_watermark_to_the_trigger_time():
    trigger = END + timedelta(minutes=13)
    got, why = run_window(pipeline(), SCHEDULE, RunStart(None, None, None, trigger, manual=True), WATERMARK, None)
    assert got == Window(WATERMARK, trigger) and "watermark" in why


def test_a_run_without_a_logical_date_and_full_snapshot_reads_every_row_before_the_trigger_time():
    trigger = END + timedelta(minutes=13)
    assert window(run=RunStart(None, None, None, trigger, manual=True, full_snapshot=True)) == Window(None, trigger)


def test_a_run_without_a_logical_date_on_a_new_pipeline_is_the_initial_snapshot():
    trigger = END + timedelta(minutes=13)
    assert window(run=RunStart(None, None, None, trigger, manual=True), watermark=None) == Window(None, trigger)


def test_a_watermark_past_the_trigger_time_gives_an_empty_window_not_an_inverted_one():
    trigger = END + timedelta(minutes=13)
    got = window(run=RunStart(None, None, None, trigger, manual=True), watermark=trigger + timedelta(hours=1))
    assert got == Window(trigger, trigger)


def test_a_window_is_read_in_cursor_then_key_order_and_a_snapshot_in_key_order():
    assert keyset_columns(pipeline(), Window(START, END)) == ("updated_at", "tenant", "id")
    assert keyset_columns(pipeline(), Window(None, END)) == ("tenant", "id")


def test_the_window_predicate_is_half_open_and_a_snapshot_has_no_lower_bound():
    clause, params = window_filter("updated_at", Window(START, END), "r")
    assert clause.as_string(None) == '"r"."updated_at" >= %(window_start)s AND "r"."updated_at" < %(window_end)s'
    assert params == {"window_start": START, "window_end": END}
    clause, params = window_filter("updated_at", Window(None, END))
    assert clause.as_string(None) == '"updated_at" < %(window_end)s' and params == {"window_end": END}


def test_an_integer_cursors_window_is_compared_by_its_marks_and_one_without_a_start_mark_has_no_lower_bound():
    clause, params = window_filter("version", Window(START, END, 51, 63), "r")
    assert clause.as_string(None) == '"r"."version" >= %(window_start)s AND "r"."version" < %(window_end)s'
    assert params == {"window_start": 51, "window_end": 63}
    clause, params = window_filter("version", Window(START, END, None, 63))
    assert clause.as_string(None) == '"version" < %(window_end)s' and params == {"window_end": 63}


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


def test_a_scheduled_run_after_skipped_intervals_extends_back_to_the_watermark_and_says_so():
    outage = START - timedelta(hours=6)  # three 2-hour runs never loaded (catchup=False, or they failed)
    got, why = run_window(pipeline(), SCHEDULE, RunStart.scheduled(START, END), outage, None)
    assert got == Window(outage, END) and "extended back to the watermark" in why


def test_a_backfill_run_syncs_only_its_own_interval_whatever_the_watermark():
    for watermark in (START - timedelta(hours=6), END + timedelta(days=3)):
        got, why = run_window(pipeline(), SCHEDULE, RunStart.scheduled(START, END, backfill=True), watermark, None)
        assert got == Window(START, END) and why == "the data interval"


def test_a_scheduled_run_before_the_watermark_is_not_extended():
    assert window(watermark=END + timedelta(hours=4)) == Window(START, END)
