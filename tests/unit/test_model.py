"""The shared values: windows and batches cross task boundaries as JSON (XCom) and come back equal."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from warehouse_sync.model import Batch, RunStart, TableRef, Window

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)


def through_json(value: dict) -> dict:
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("window", [Window(T0, T0 + timedelta(hours=2)), Window(None, T0),
                                    Window(T0 + timedelta(microseconds=123456), T0 + timedelta(days=1)),
                                    Window(T0, T0 + timedelta(hours=2), 51, 63), Window(None, T0, None, 51)],
                         ids=["bounded", "snapshot", "microseconds", "integer", "integer-snapshot"])
def test_a_window_survives_a_json_round_trip(window):
    assert Window.from_dict(through_json(window.to_dict())) == window


def test_an_integer_cursors_window_keeps_its_end_bound_up_to_the_end_and_prints_it():
    window = Window(T0, T0 + timedelta(hours=2), 51, 63)
    assert window.is_integer and not Window(T0, T0 + timedelta(hours=2)).is_integer
    assert window.up_to_end() == Window(None, T0 + timedelta(hours=2), None, 63)
    assert str(window).endswith(" = cursor [51, 63)")


def test_a_window_read_back_is_timezone_aware_and_ignores_extra_keys():
    raw = {**Window(T0, T0 + timedelta(hours=2)).to_dict(), "late_horizon": None}
    window = Window.from_dict(through_json(raw))
    assert window.start.utcoffset() == timedelta(0) and window.end == T0 + timedelta(hours=2)


@pytest.mark.parametrize("batch", [Batch(0, None, None), Batch(0, None, ("2026-11-20 00:00:00+00", "a", "3")),
                                   Batch(4, ("2026-11-20 00:00:00+00", "a", "3"), ("2026-11-20 01:00:00+00", "b", "1")),
                                   Batch(7, ("42",), None)],
                         ids=["only", "first", "middle", "last of a snapshot"])
def test_a_batch_survives_a_json_round_trip_with_its_bounds_as_tuples(batch):
    assert Batch.from_dict(through_json(batch.to_dict())) == batch


def test_an_unbounded_side_of_a_batch_is_null_in_json():
    assert Batch(0, None, ("x",)).to_dict() == {"index": 0, "lower": None, "upper": ["x"]}


def test_a_window_prints_half_open_and_a_snapshot_from_minus_infinity():
    assert str(Window(T0, T0 + timedelta(hours=2))) == "[2026-11-20T00:00:00+00:00, 2026-11-20T02:00:00+00:00)"
    assert str(Window(None, T0)) == "[-inf, 2026-11-20T00:00:00+00:00)"
    assert Window(None, T0).is_snapshot and not Window(T0, T0 + timedelta(hours=2)).is_snapshot


def test_a_table_ref_parses_schema_dot_table_and_prints_it_back():
    assert TableRef.parse("tpch.orders") == TableRef("tpch", "orders")
    assert str(TableRef("tpch", "orders")) == "tpch.orders"


@pytest.mark.parametrize("text", ["orders", "a.b.c", ".orders", "tpch.", "", None])
def test_a_table_ref_without_exactly_one_schema_and_name_is_rejected(text):
    with pytest.raises(ValueError, match="expected 'schema.table'"):
        TableRef.parse(text)


def test_a_run_start_reads_a_dag_run_and_knows_a_manual_run_by_its_run_type():
    from enum import Enum
    from types import SimpleNamespace

    class RunType(str, Enum):  # the shape of Airflow's DagRunType
        MANUAL = "manual"
        SCHEDULED = "scheduled"

    start = datetime(2026, 11, 20, tzinfo=timezone.utc)
    end = start + timedelta(hours=2)

    def dag_run(run_type, logical_date=start):
        return SimpleNamespace(run_type=run_type, logical_date=logical_date, data_interval_start=start,
                               data_interval_end=end, run_after=end)

    manual = RunStart.from_dag_run(dag_run(RunType.MANUAL), {"full_snapshot": True})
    assert manual.manual and manual.full_snapshot and manual.interval_end == end
    assert RunStart.from_dag_run(dag_run("manual", None), None).manual
    assert not RunStart.from_dag_run(dag_run(RunType.SCHEDULED)).manual
    assert not RunStart.from_dag_run(dag_run("backfill")).full_snapshot
