"""The expectation suite of a run: the standard key expectations every table gets, the configured
ones, and the volume band around the median of recent windows."""

from __future__ import annotations

from warehouse_sync.config import Expectation, Pipeline
from warehouse_sync.model import TableRef
from warehouse_sync.quality.suite import standard_expectations, suite_for, volume_expectation


def pipeline(**settings) -> Pipeline:
    return Pipeline(name="lines", source=TableRef("t_src", "lines"), target=TableRef("t_dst", "lines"),
                    primary_key=("l_orderkey", "l_linenumber"), cursor="updated_at", **settings)


def test_keys_are_checked_not_null_and_unique_single_and_composite():
    single = standard_expectations(("o_orderkey",))
    assert [c.expect for c in single] == ["column_values_to_not_be_null", "column_values_to_be_unique"]
    composite = standard_expectations(("l_orderkey", "l_linenumber"))
    assert composite[-1] == Expectation("compound_columns_to_be_unique",
                                        (("column_list", ("l_orderkey", "l_linenumber")),),
                                        "fail", "primary key is unique")


def test_every_key_column_is_checked_not_null_and_every_standard_expectation_fails_the_run():
    composite = standard_expectations(("l_orderkey", "l_linenumber"))
    assert [c.kwargs() for c in composite[:2]] == [{"column": "l_orderkey"}, {"column": "l_linenumber"}]
    assert {c.severity for c in composite} == {"fail"}


def test_the_volume_band_needs_three_windows_and_centres_on_their_median():
    assert volume_expectation([100, 90], 0.5).kwargs() == {"min_value": 0}
    band = volume_expectation([100, 1000, 90, 110], 0.5)
    assert band.severity == "warn" and band.kwargs() == {"min_value": 55, "max_value": 166}


def test_the_volume_band_width_follows_the_tolerance_and_names_the_median():
    band = volume_expectation([600, 600, 600], 0.25)
    assert band.kwargs() == {"min_value": 450, "max_value": 751}
    assert band.title == "rows in the window within 25% of the recent median (600)"


def test_no_expectations_means_only_the_standard_ones_and_the_volume_band():
    suite = suite_for(pipeline(), [])
    assert suite == [*standard_expectations(("l_orderkey", "l_linenumber")), volume_expectation([], 0.5)]


def test_the_suite_is_standard_then_configured_then_the_volume_band():
    configured = (Expectation("column_values_to_be_between", (("column", "qty"), ("min_value", 0))),
                  Expectation("column_values_to_not_be_null", (("column", "note"),), "warn", "note is set"))
    suite = suite_for(pipeline(expectations=configured, volume_tolerance=0.2), [10, 20, 30])
    assert suite[:3] == list(standard_expectations(("l_orderkey", "l_linenumber")))
    assert tuple(suite[3:5]) == configured
    assert suite[5] == volume_expectation([10, 20, 30], 0.2) and len(suite) == 6


def test_a_standard_expectation_names_its_columns_and_title_for_the_report():
    unique = standard_expectations(("l_orderkey", "l_linenumber"))[-1]
    assert unique.columns == "l_orderkey, l_linenumber" and unique.title == "primary key is unique"
    assert volume_expectation([], 0.5).columns is None
