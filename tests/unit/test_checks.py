"""Data-quality checks in the pipeline file: parsed, validated (names file, pipeline, entry), and the
standard checks and volume band every pipeline gets."""

from __future__ import annotations

import pytest
import yaml

from warehouse_sync.checks import Check, parse_checks, standard_checks, volume_check
from warehouse_sync.config import ConfigError, load_config

ORDERS = {"name": "orders", "source": "tpch.orders", "primary_key": ["o_orderkey"], "cursor": "updated_at",
          "target": "dw.orders"}


def load_with_checks(tmp_path, checks):
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump({"pipelines": [{**ORDERS, "checks": checks}]}))
    return load_config(path).pipelines[0]


def test_checks_parse_into_gx_class_names_kwargs_and_severities(tmp_path):
    pipeline = load_with_checks(tmp_path, [
        {"expect": "column_values_to_be_in_set", "column": "o_orderstatus", "value_set": ["O", "F", "P"]},
        {"expect": "column_values_to_be_between", "column": "o_totalprice", "min_value": 0, "severity": "warn",
         "label": "price not negative"},
    ])
    status, price = pipeline.checks
    assert status.class_name == "ExpectColumnValuesToBeInSet" and status.severity == "fail"
    assert status.kwargs() == {"column": "o_orderstatus", "value_set": ["O", "F", "P"]}
    assert (price.severity, price.label) == ("warn", "price not negative")
    hash(pipeline)  # still a frozen, hashable config


def test_every_configured_expectation_name_exists_in_great_expectations():
    import great_expectations.expectations as gxe

    for pipeline in load_config().pipelines:
        for check in pipeline.checks:
            assert hasattr(gxe, check.class_name), check.expect


@pytest.mark.parametrize(("entry", "words"), [
    ({"expect": "column_values_to_be_betwen", "column": "x"}, "unknown expectation 'column_values_to_be_betwen'"),
    ({"expect": "column_values_to_not_be_null", "column": "x", "severity": "loud"}, "severity must be one of"),
    ({"column": "x"}, "expected a mapping with 'expect'"),
    ({"expect": "column_values_to_not_be_null", "bad key": 1}, "invalid argument name"),
])
def test_a_bad_check_names_file_pipeline_field_and_entry(tmp_path, entry, words):
    with pytest.raises(ConfigError) as info:
        load_with_checks(tmp_path, [{"expect": "column_values_to_not_be_null", "column": "o_orderkey"}, entry])
    message = str(info.value)
    assert str(tmp_path / "pipelines.yaml") in message and "pipeline 'orders'" in message
    assert "field 'checks' entry 2" in message and words in message


def test_keys_are_checked_not_null_and_unique_single_and_composite():
    single = standard_checks(("o_orderkey",))
    assert [c.expect for c in single] == ["column_values_to_not_be_null", "column_values_to_be_unique"]
    composite = standard_checks(("l_orderkey", "l_linenumber"))
    assert composite[-1] == Check("compound_columns_to_be_unique", (("column_list", ("l_orderkey", "l_linenumber")),),
                                  "fail", "primary key is unique")


def test_the_volume_band_needs_three_windows_and_centres_on_their_median():
    assert volume_check([100, 90], 0.5).kwargs() == {"min_value": 0}
    band = volume_check([100, 1000, 90, 110], 0.5)
    assert band.severity == "warn" and band.kwargs() == {"min_value": 55, "max_value": 166}


def test_no_checks_means_only_the_standard_ones():
    assert parse_checks(None, "x") == ()


def test_a_check_names_its_columns_and_title_for_the_report():
    pair = Check("column_pair_values_a_to_be_greater_than_b", (("column_A", "l_receiptdate"), ("column_B", "l_shipdate")))
    assert pair.columns == "l_receiptdate, l_shipdate" and pair.title == pair.describe()
    unique = standard_checks(("l_orderkey", "l_linenumber"))[-1]
    assert unique.columns == "l_orderkey, l_linenumber" and unique.title == "primary key is unique"
    assert volume_check([], 0.5).columns is None
