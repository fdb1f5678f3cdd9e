"""The reconcile loop's decisions (compare → locate → repair → compare again → alert) with its
database steps replaced by recorded fakes: when it locates, when it alerts, what it raises."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from warehouse_sync.config import Pipeline
from warehouse_sync.model import TableRef, Window
from warehouse_sync.reconcile import loop
from warehouse_sync.reconcile.compare import Comparison, DriftDetected, Side
from warehouse_sync.reconcile.keys import KeyCheck
from warehouse_sync.reconcile.locate import Drift
from warehouse_sync.reconcile.repair import RepairRefused, RepairResult
from warehouse_sync.run import Run

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)
AS_OF = T0 + timedelta(hours=1)
WINDOW = Window(T0, AS_OF)
PIPELINE = Pipeline(name="lines", source=TableRef("t_src", "lines"), target=TableRef("t_dst", "lines"),
                    primary_key=("order_id", "line"), cursor="updated_at")
MATCH = Comparison("window", WINDOW, Side(10, 123), Side(10, 123))
TABLE_MATCH = Comparison("table", Window(None, AS_OF), Side(1, 1), Side(1, 1))
BAD = Comparison("window", WINDOW, Side(10, 123), Side(9, 456))


class FakeWarehouse:
    def __init__(self):
        self.rolled_back = 0

    def rollback(self):
        self.rolled_back += 1

    def commit(self):
        pass


@pytest.fixture
def steps(monkeypatch):
    """Replaces the loop's database steps; ``steps["compare"]`` lists what each compare returns."""
    calls = {"compare": [], "located": 0, "audit": [], "drift_history": [], "found": Drift(), "repair": None,
             "keys": []}

    def compare(source, warehouse, pipeline, columns, window, full_table):
        return list(calls["compare"].pop(0))

    def locate(source, warehouse, pipeline, columns, as_of):
        calls["located"] += 1
        found = calls["found"]
        return found.pop(0) if isinstance(found, list) else found  # a list: what each locate finds, in turn

    def repair(run, columns, found):
        if isinstance(calls["repair"], Exception):
            raise calls["repair"]
        return RepairResult(len(found.missing) + len(found.changed), len(found.extra))

    monkeypatch.setattr(loop, "describe_pipeline_source", lambda *args: [])
    monkeypatch.setattr(loop, "read_columns", lambda *args: [])
    monkeypatch.setattr(loop, "compare", compare)
    monkeypatch.setattr(loop, "locate", locate)
    monkeypatch.setattr(loop, "repair", repair)
    monkeypatch.setattr(loop, "check_keys",
                        lambda source, warehouse, pipeline, columns, as_of, only=None, key_slice=(0, 1):
                        calls["keys"].pop(0))
    monkeypatch.setattr(loop, "has_integer_key", lambda pipeline, columns: True)
    monkeypatch.setattr(loop, "run_key_slice", lambda source, pipeline, window_end: (0, 1))
    monkeypatch.setattr(loop.audit, "record",
                        lambda conn, pipeline, run_id, step, window, **kw: calls["audit"].append((step, kw["status"])))
    monkeypatch.setattr(loop.audit, "record_drift",
                        lambda conn, pipeline, run_id, scope, as_of, found, repaired, refused:
                        calls["drift_history"].append((scope, found.total, repaired, refused)))
    return calls


def run(steps, on_drift=None, warehouse=None, table_check="full"):
    return loop.reconcile(Run(PIPELINE, None, warehouse or FakeWarehouse(), "r1"), WINDOW, "window", table_check,
                          on_drift)


def test_a_matching_comparison_locates_nothing_and_does_not_alert(steps):
    steps["compare"] = [[MATCH, TABLE_MATCH]]
    alerts = []
    result = run(steps, alerts.append)
    assert result.drift is None and not result.keys_differed and steps["located"] == 0 and alerts == []
    assert steps["audit"] == [("reconcile_window", "ok"), ("reconcile_table", "ok")]


def test_drift_is_located_repaired_compared_again_and_alerted_once(steps):
    steps["compare"] = [[BAD, TABLE_MATCH], [MATCH, TABLE_MATCH]]
    steps["found"] = Drift(missing=[(1, 1)], extra=[(2, 1), (2, 2)], rows=20)
    alerts = []
    result = run(steps, alerts.append)
    assert result.keys_differed and result.comparisons == (MATCH, TABLE_MATCH)
    assert alerts == [result.drift] and result.drift["repaired"] == 3 and result.drift["missing"] == 1
    assert steps["drift_history"] == [("window", 3, 3, False)]
    assert steps["audit"] == [("reconcile_window", "drift"), ("reconcile_table", "ok"),
                              ("reconcile_window_after_repair", "ok"), ("reconcile_table_after_repair", "ok")]


def test_rows_only_in_flight_are_re_checked_but_never_alerted(steps):
    steps["compare"] = [[BAD, TABLE_MATCH], [MATCH, TABLE_MATCH]]
    alerts = []
    result = run(steps, alerts.append)  # locate found no key: the mismatch was rows in flight
    assert steps["located"] == 1 and result.drift["repaired"] == 0 and not result.keys_differed and alerts == []


def test_drift_that_remains_names_table_window_counts_and_checksums(steps):
    steps["compare"] = [[BAD, TABLE_MATCH], [BAD, TABLE_MATCH]]
    with pytest.raises(DriftDetected) as info:
        run(steps)
    message = str(info.value)
    assert "t_src.lines window" in message and "source 10 rows, checksum 123" in message
    assert "warehouse 9 rows, checksum 456" in message and "|" not in message  # the matching scope is not named
    assert info.value.comparisons == [BAD]


def test_a_refused_repair_is_recorded_rolled_back_and_raised(steps):
    steps["compare"] = [[BAD, TABLE_MATCH]]
    steps["found"] = Drift(changed=[(n, 1) for n in range(40)], rows=1200)
    steps["repair"] = RepairRefused("40 rows differ")
    warehouse = FakeWarehouse()
    with pytest.raises(RepairRefused):
        run(steps, warehouse=warehouse)
    assert warehouse.rolled_back == 1 and steps["drift_history"] == [("window", 40, 0, True)]


def test_the_daily_scope_goes_straight_to_locate(steps):
    steps["compare"] = [[Comparison("window", Window(None, AS_OF), Side(5, 5), Side(5, 5))]]
    result = loop.reconcile(Run(PIPELINE, None, FakeWarehouse(), "daily"), Window(None, AS_OF), "table", "none")
    assert steps["located"] == 1 and result.scope == "table" and result.drift["repaired"] == 0
    assert steps["audit"] == [("reconcile_window_daily", "ok")]


@pytest.mark.parametrize(("drift", "differed"), [
    (None, False),
    ({"missing": 0, "extra": 0, "changed": 0, "repaired": 0}, False),
    ({"missing": 1, "extra": 0, "changed": 0, "repaired": 1}, True),
    ({"missing": 0, "extra": 2, "changed": 0, "repaired": 2}, True),
    ({"missing": 0, "extra": 0, "changed": 3, "repaired": 3}, True),
], ids=["nothing located", "only in flight", "missing", "extra", "changed"])
def test_keys_differed_only_when_locate_found_a_missing_extra_or_changed_key(drift, differed):
    assert loop.Reconciliation("window", AS_OF, (MATCH,), drift).keys_differed is differed


def test_a_reconciliation_is_json_friendly_with_scope_as_of_comparisons_and_drift():
    result = loop.Reconciliation("window", AS_OF, (MATCH, TABLE_MATCH), None).to_dict()
    assert set(result) == {"scope", "as_of", "comparisons", "drift", "in_flight"} and result["in_flight"] == 0
    assert result["as_of"] == AS_OF.isoformat() and result["drift"] is None
    assert [c["scope"] for c in result["comparisons"]] == ["window", "table"]
    assert result["comparisons"][0]["source_checksum"] == "123" and result["comparisons"][0]["matches"]


KEYS_MATCH = Comparison("keys", Window(None, AS_OF), Side(20, 5), Side(20, 5))
KEYS_BAD = Comparison("keys", Window(None, AS_OF), Side(19, 4), Side(20, 5))


def test_the_key_check_runs_after_a_matching_window_and_its_deletes_are_repaired_and_alerted(steps):
    steps["compare"] = [[MATCH]]
    steps["keys"] = [KeyCheck(Drift(extra=[(7, 1)], rows=19), KEYS_BAD), KeyCheck(Drift(rows=19), KEYS_MATCH)]
    alerts = []
    result = run(steps, alerts.append, table_check="keys")
    assert steps["located"] == 0 and result.comparisons == (MATCH, KEYS_MATCH)
    assert alerts == [result.drift] and result.drift["extra"] == 1 and result.drift["repaired"] == 1
    assert steps["drift_history"] == [("window", 1, 1, False)]
    assert steps["audit"] == [("reconcile_window", "ok"), ("reconcile_keys", "drift"),
                              ("reconcile_keys_after_repair", "ok")]


def test_matching_keys_are_checked_once_and_not_alerted(steps):
    steps["compare"] = [[MATCH]]
    steps["keys"] = [KeyCheck(Drift(rows=20), KEYS_MATCH)]
    alerts = []
    result = run(steps, alerts.append, table_check="keys")
    assert result.drift is None and alerts == [] and steps["keys"] == []
    assert steps["audit"] == [("reconcile_window", "ok"), ("reconcile_keys", "ok")]


def test_keys_that_still_differ_after_the_repair_raise(steps):
    steps["compare"] = [[MATCH]]
    steps["keys"] = [KeyCheck(Drift(extra=[(7, 1)], rows=19), KEYS_BAD), KeyCheck(Drift(rows=19), KEYS_BAD)]
    with pytest.raises(DriftDetected, match="t_src.lines keys"):
        run(steps, table_check="keys")


def test_keys_the_source_deleted_during_the_run_are_in_flight_after_the_repair_not_drift(steps):
    steps["compare"] = [[MATCH]]
    steps["keys"] = [KeyCheck(Drift(extra=[(7, 1)], rows=19), KEYS_BAD), KeyCheck(Drift(extra=[(9, 2)]), KEYS_BAD)]
    alerts = []
    result = run(steps, alerts.append, table_check="keys")  # no DriftDetected
    assert result.in_flight == ((9, 2),) and alerts == [result.drift] and result.drift["extra"] == 1
    assert steps["audit"][-1] == ("reconcile_in_flight", "deferred")


@pytest.mark.parametrize("after", [Drift(), Drift(extra=[(3, 1)])], ids=["nothing named", "repair did not delete"])
def test_a_residual_that_locate_cannot_name_or_the_repair_did_not_mend_is_drift(steps, after):
    steps["compare"] = [[BAD, TABLE_MATCH], [BAD, TABLE_MATCH]]
    steps["found"] = [Drift(changed=[(1, 1)], extra=[(3, 1)], rows=10), after]
    with pytest.raises(DriftDetected):
        loop.reconcile(Run(PIPELINE, None, FakeWarehouse(), "r1"), WINDOW, "window", "full",
                       pending=lambda: {("1", "1")})  # (1, 1) is held: pending, not repaired


def test_keys_with_a_pending_change_are_not_repaired_and_are_in_flight(steps):
    steps["compare"] = [[BAD, TABLE_MATCH], [BAD, TABLE_MATCH]]
    steps["found"] = Drift(missing=[(4, 1)], extra=[(3, 1)], rows=10)  # both changed after the run's LSN
    alerts = []
    result = loop.reconcile(Run(PIPELINE, None, FakeWarehouse(), "r1"), WINDOW, "window", "full", alerts.append,
                            pending=lambda: {("4", "1"), ("3", "1")})
    assert result.in_flight == ((4, 1), (3, 1)) and result.drift["repaired"] == 0 and alerts == []
    assert steps["audit"][-1] == ("reconcile_in_flight", "deferred")


def test_a_window_whose_residual_is_only_keys_gone_from_the_source_is_in_flight(steps):
    steps["compare"] = [[BAD, TABLE_MATCH], [BAD, TABLE_MATCH]]
    steps["found"] = [Drift(extra=[(3, 1)], rows=10), Drift(extra=[(5, 1)], rows=9)]  # before, after the repair
    result = run(steps)
    assert steps["located"] == 2 and result.in_flight == ((5, 1),)
    assert steps["audit"][-1] == ("reconcile_in_flight", "deferred")


@pytest.mark.parametrize("residual", [Drift(missing=[(4, 1)]), Drift(changed=[(4, 1)], extra=[(3, 1)])],
                         ids=["missing", "changed beside gone"])
def test_a_residual_with_a_key_the_source_still_has_is_drift(steps, residual):
    steps["compare"] = [[BAD, TABLE_MATCH], [BAD, TABLE_MATCH]]
    steps["found"] = [Drift(changed=[(4, 1)], rows=10), residual]
    with pytest.raises(DriftDetected):
        run(steps)
    assert (("reconcile_in_flight", "deferred") in steps["audit"]) is bool(residual.extra)  # the gone key only


@pytest.mark.parametrize("first", [[BAD], [Comparison("window", WINDOW, Side(0, 0), Side(0, 0), 9, deferred=True)]],
                         ids=["window drifted: locate covers the table", "deferred"])
def test_no_key_check_when_the_window_drifted_or_was_deferred(steps, first):
    steps["compare"] = [first, [MATCH]]
    run(steps, table_check="keys")  # check_keys would fail: steps["keys"] is empty


def test_no_key_check_for_a_snapshot_or_when_switched_off(steps):
    steps["compare"] = [[MATCH], [MATCH]]
    loop.reconcile(Run(PIPELINE, None, FakeWarehouse(), "r1"), Window(None, AS_OF), "window", "keys")
    run(steps, table_check="none")
    assert steps["audit"] == [("reconcile_window", "ok")] * 2
