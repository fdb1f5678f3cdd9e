"""Config that fits real tables: a schedule per pipeline, a column selection, one pipeline per target
table, and bad entries kept apart from the valid ones (read_config)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import yaml

from warehouse_sync.config import SYNC_SCHEDULE, ColumnSelection, ConfigError, Pipeline, load_config, read_config
from warehouse_sync.model import RunStart
from warehouse_sync.modes import mode_for
from warehouse_sync.sync.plan import run_window


def entry(name: str = "orders", **fields) -> dict:
    return {"name": name, "source": f"app.{name}", "primary_key": ["id"], "cursor": "updated_at",
            "target": f"dw.{name}", **fields}


def write(tmp_path, *entries, **top) -> str:
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump({"pipelines": list(entries), **top}))
    return str(path)


def error_of(path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# --- schedule -----------------------------------------------------------------------------------------

def test_the_schedule_defaults_to_every_two_hours(tmp_path):
    (orders,) = load_config(write(tmp_path, entry())).pipelines
    assert orders.schedule == SYNC_SCHEDULE == "0 */2 * * *" and orders.schedule_cron == "0 */2 * * *"


def test_a_pipeline_takes_a_cron_expression_or_an_airflow_preset(tmp_path):
    orders, daily, quarterly = load_config(write(tmp_path, entry(schedule="*/15 6-18 * * 1-5"),
                                                 entry("daily", schedule="@daily"),
                                                 entry("quarterly", schedule="@quarterly"))).pipelines
    assert orders.schedule_cron == "*/15 6-18 * * 1-5"
    assert (daily.schedule, daily.schedule_cron) == ("@daily", "0 0 * * *")
    assert quarterly.schedule_cron == "0 0 1 */3 *"


def test_the_defaults_section_sets_the_schedule_and_an_entry_wins(tmp_path):
    first, second = load_config(write(tmp_path, entry(), entry("items", schedule="@hourly"),
                                      defaults={"schedule": "30 1 * * *"})).pipelines
    assert (first.schedule, second.schedule) == ("30 1 * * *", "@hourly")


@pytest.mark.parametrize("bad", ["61 * * * *", "every hour", "@once", "@continuous", "0 0 * * * 30", "@fortnightly"])
def test_a_bad_schedule_names_file_pipeline_and_field(tmp_path, bad):
    path = write(tmp_path, entry(schedule=bad))
    message = error_of(path)
    assert message.startswith(f"{path}: pipeline 'orders', field 'schedule': ") and repr(bad) in message


def test_a_first_window_without_a_data_interval_is_one_interval_of_the_pipelines_own_schedule():
    hourly = Pipeline(**entry(schedule="@hourly", initial_load="window"))
    schedule = mode_for(hourly).schedule  # type: ignore[attr-defined]  # the cursor mode's
    assert schedule == "0 * * * *"
    trigger = datetime(2026, 11, 20, 5, 37, tzinfo=timezone.utc)
    run = RunStart(None, None, None, trigger, manual=True)  # triggered without a logical date, no watermark yet
    window, _ = run_window(hourly, schedule, run, None, None)
    assert (window.start, window.end) == (trigger.replace(minute=0), trigger)  # two-hourly would start at 04:00


# --- columns ------------------------------------------------------------------------------------------

def test_exclude_drops_only_the_named_columns_and_include_keeps_key_and_cursor(tmp_path):
    excluding, including = load_config(write(tmp_path, entry(columns={"exclude": ["email", "phone"]}),
                                             entry("items", columns={"include": ["amount"]}))).pipelines
    assert excluding.columns == ColumnSelection(exclude=("email", "phone"))
    assert [c for c in ("id", "updated_at", "amount", "email", "phone") if excluding.selects(c)] == [
        "id", "updated_at", "amount"]
    assert [c for c in ("id", "updated_at", "amount", "email") if including.selects(c)] == ["id", "updated_at",
                                                                                          "amount"]
    assert Pipeline(**entry()).selects("anything")


@pytest.mark.parametrize("columns, says", [
    ({"include": ["a"], "exclude": ["b"]}, "give exactly one of 'include'"),
    ({}, "give exactly one of 'include'"),
    ({"exclude": []}, "'exclude' lists no column"),
    ({"exclude": ["email", "email"]}, "repeated column"),
    ({"hide": ["email"]}, "unknown field (allowed: exclude, include)"),
    ({"exclude": ["email", "id"]}, "'exclude' names ['id']: the primary key and the cursor are always synced"),
    ({"exclude": ["updated_at"]}, "'exclude' names ['updated_at']"),
])
def test_a_bad_column_selection_names_file_pipeline_and_field(tmp_path, columns, says):
    path = write(tmp_path, entry(columns=columns))
    message = error_of(path)
    assert message.startswith(f"{path}: pipeline 'orders', field 'columns") and says in message, message


def test_an_expectation_on_an_excluded_column_is_a_config_error(tmp_path):
    path = write(tmp_path, entry(columns={"exclude": ["email"]}, expectations=[
        {"expect": "column_values_to_not_be_null", "column": "id"},
        {"expect": "column_values_to_match_regex", "column": "email", "regex": "@"}]))
    assert "field 'expectations': entry 2 (column_values_to_match_regex) reads ['email'], which 'columns' leaves" \
        in error_of(path)


# --- one pipeline per target table -------------------------------------------------------------------

def test_two_pipelines_writing_one_target_table_are_refused_naming_both(tmp_path):
    path = write(tmp_path, entry(), entry("orders_copy", target="dw.orders"))
    assert ("pipelines 'orders' and 'orders_copy', field 'target': both write dw.orders in connection "
            "'warehouse_postgres'") in error_of(path)


def test_one_target_name_in_two_warehouses_is_two_tables(tmp_path):
    path = write(tmp_path, entry(), entry("orders_eu", target="dw.orders", warehouse_conn_id="warehouse_eu"))
    assert len(load_config(path).pipelines) == 2


# --- bad entries apart ---------------------------------------------------------------------------------

def test_read_config_keeps_the_valid_pipelines_and_names_only_the_bad_entries(tmp_path):
    path = write(tmp_path, entry(), entry("broken", batch_size=-5), entry("items"),
                 entry("twin_a", target="dw.twin"), entry("twin_b", target="dw.twin"))
    read = read_config(path)
    assert [p.name for p in read.config.pipelines] == ["orders", "items"]
    assert len(read.problems) == 2
    assert "pipeline 'broken', field 'batch_size'" in read.problems[0]
    assert "pipelines 'twin_a' and 'twin_b'" in read.problems[1]
    assert str(read.error).startswith(f"{path}: pipeline 'broken'") and "orders" not in str(read.error)
    assert read_config(write(tmp_path, entry())).error is None


def test_a_name_used_twice_leaves_out_both_entries(tmp_path):
    read = read_config(write(tmp_path, entry(), entry(target="dw.other"), entry("items")))
    assert [p.name for p in read.config.pipelines] == ["items"]
    assert read.problems == ("pipeline 'orders', field 'name': used twice (entries #1, #2)",)


def test_a_problem_of_the_whole_file_is_still_raised_by_read_config(tmp_path):
    with pytest.raises(ConfigError, match="defaults, field 'batch_size'"):
        read_config(write(tmp_path, entry(), defaults={"batch_size": 0}))
