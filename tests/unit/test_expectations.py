"""Data-quality expectations in the pipeline file: parsed and validated (errors name file, pipeline,
field and entry), and described for the report."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from warehouse_sync.config import EXPECTATIONS, SEVERITIES, ConfigError, Expectation, load_config

SHIPPED = Path(__file__).resolve().parents[2] / "include" / "pipelines.yaml"
ORDERS = {"name": "orders", "source": "tpch.orders", "primary_key": ["o_orderkey"], "cursor": "updated_at",
          "target": "dw.orders"}


def load_with_expectations(tmp_path, expectations):
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump({"pipelines": [{**ORDERS, "expectations": expectations}]}))
    return load_config(path).pipelines[0]


def test_expectations_parse_into_gx_class_names_kwargs_and_severities(tmp_path):
    pipeline = load_with_expectations(tmp_path, [
        {"expect": "column_values_to_be_in_set", "column": "o_orderstatus", "value_set": ["O", "F", "P"]},
        {"expect": "column_values_to_be_between", "column": "o_totalprice", "min_value": 0, "severity": "warn",
         "label": "price not negative"},
    ])
    status, price = pipeline.expectations
    assert isinstance(status, Expectation)
    assert status.class_name == "ExpectColumnValuesToBeInSet" and status.severity == "fail"
    assert status.arguments == (("column", "o_orderstatus"), ("value_set", ("O", "F", "P")))
    assert status.kwargs() == {"column": "o_orderstatus", "value_set": ["O", "F", "P"]}
    assert (price.severity, price.label) == ("warn", "price not negative")
    hash(pipeline)  # still a frozen, hashable config


def test_every_configured_expectation_name_exists_in_great_expectations():
    gxe = pytest.importorskip("great_expectations.expectations")
    for pipeline in load_config(SHIPPED).pipelines:
        for expectation in pipeline.expectations:
            assert hasattr(gxe, expectation.class_name), expectation.expect


def test_known_names_and_severities():
    assert "column_values_to_be_between" in EXPECTATIONS and SEVERITIES == ("fail", "warn")


@pytest.mark.parametrize(("entry", "words"), [
    ({"expect": "column_values_to_be_betwen", "column": "x"}, "unknown expectation 'column_values_to_be_betwen'"),
    ({"expect": "column_values_to_not_be_null", "column": "x", "severity": "loud"}, "severity must be one of"),
    ({"column": "x"}, "expected a mapping with 'expect'"),
    ("column_values_to_not_be_null", "expected a mapping with 'expect'"),
    ({"expect": "column_values_to_not_be_null", "bad key": 1}, "invalid argument name"),
    # the validate step passes meta itself: a configured one would fail every run with a duplicate argument
    ({"expect": "column_values_to_not_be_null", "column": "x", "meta": {"owner": "ana"}},
     "argument(s) ['meta'] are set by the validate step"),
])
def test_a_bad_expectation_names_file_pipeline_field_and_entry(tmp_path, entry, words):
    with pytest.raises(ConfigError) as info:
        load_with_expectations(tmp_path, [{"expect": "column_values_to_not_be_null", "column": "o_orderkey"}, entry])
    message = str(info.value)
    assert str(tmp_path / "pipelines.yaml") in message and "pipeline 'orders'" in message
    assert "field 'expectations' entry 2" in message and words in message


def test_a_bad_entry_under_the_old_checks_key_is_named_as_written(tmp_path):
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump({"pipelines": [{**ORDERS, "checks": [{"expect": "nope"}]}]}))
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match=r"field 'checks' entry 1: unknown"):
        load_config(path)


def test_no_expectations_means_an_empty_tuple(tmp_path):
    assert load_with_expectations(tmp_path, None).expectations == ()
    assert load_with_expectations(tmp_path, []).expectations == ()


def test_parse_raises_value_error_and_to_dict_is_its_inverse():
    with pytest.raises(ValueError, match="unknown expectation"):
        Expectation.parse({"expect": "nope"})
    parsed = Expectation.parse({"expect": "column_values_to_not_be_null", "column": "id", "label": "id is set"})
    assert parsed == Expectation("column_values_to_not_be_null", (("column", "id"),), "fail", "id is set")
    assert Expectation.parse(parsed.to_dict()) == parsed
    assert len({parsed, Expectation("column_values_to_not_be_null", (("column", "id"),), "fail", "id is set")}) == 1


def test_an_expectation_names_its_columns_and_title_for_the_report():
    pair = Expectation("column_pair_values_a_to_be_greater_than_b",
                       (("column_A", "l_receiptdate"), ("column_B", "l_shipdate")))
    assert pair.columns == "l_receiptdate, l_shipdate" and pair.title == pair.describe()
    unique = Expectation("compound_columns_to_be_unique", (("column_list", ("l_orderkey", "l_linenumber")),),
                         "fail", "primary key is unique")
    assert unique.columns == "l_orderkey, l_linenumber" and unique.title == "primary key is unique"
    price = Expectation("column_values_to_be_between", (("column", "o_totalprice"), ("min_value", 0)))
    assert price.columns == "o_totalprice" and price.describe() == "o_totalprice: values to be between (min_value=0)"
    rows = Expectation("table_row_count_to_be_between", (("min_value", 0),), "warn")
    assert rows.columns is None and rows.title == "table row count to be between (min_value=0)"
