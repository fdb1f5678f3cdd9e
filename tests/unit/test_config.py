"""Config: one YAML file validated into frozen dataclasses; every error names file, pipeline, field."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from warehouse_sync.config import ConfigError, load_config

GOOD = {
    "defaults": {"batch_size": 1000},
    "pipelines": [
        {"name": "orders", "source": "tpch.orders", "primary_key": ["o_orderkey"], "cursor": "updated_at",
         "target": "dw.orders"},
        {"name": "lineitem", "source": "tpch.lineitem", "primary_key": ["l_orderkey", "l_linenumber"],
         "cursor": "updated_at", "target": "dw.lineitem", "batch_size": 7},
    ],
}


def write(tmp_path, doc):
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return path


def test_valid_file_gives_frozen_pipelines_with_defaults_applied(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    orders, lineitem = config.pipelines
    assert orders.batch_size == 1000 and lineitem.batch_size == 7
    assert lineitem.primary_key == ("l_orderkey", "l_linenumber")
    assert str(orders.target) == "dw.orders" and orders.dag_id == "sync_orders"
    with pytest.raises(dataclasses.FrozenInstanceError):
        orders.batch_size = 5  # type: ignore[misc]


def test_shipped_pipelines_file_is_valid():
    names = [p.name for p in load_config().pipelines]
    assert names == ["tpch_orders", "tpch_lineitem"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"primary_key": []}, "primary_key"),
        ({"source": "orders"}, "source"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": "many"}, "batch_size"),
        ({"cursor": "o_orderkey"}, "cursor"),
        ({"colour": "red"}, "colour"),
        ({"name": "Bad Name"}, "name"),
    ],
)
def test_invalid_entry_error_names_file_pipeline_and_field(tmp_path, change, field):
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    doc["pipelines"][0].update(change)
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and field in message
    assert "orders" in message or "Bad Name" in message


def test_missing_required_field_is_named(tmp_path):
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    del doc["pipelines"][1]["cursor"]
    with pytest.raises(ConfigError, match=r"pipeline 'lineitem': field 'cursor' is required"):
        load_config(write(tmp_path, doc))


def test_duplicate_pipeline_names_are_rejected(tmp_path):
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    doc["pipelines"][1]["name"] = "orders"
    with pytest.raises(ConfigError, match="used twice"):
        load_config(write(tmp_path, doc))


def test_unparseable_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "pipelines: [unclosed")
    with pytest.raises(ConfigError, match=str(path)):
        load_config(path)


def test_alert_channels_are_parsed_and_bad_ones_named(tmp_path):
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    doc["alerts"] = {"smtp": {"to": ["a@example.com"], "conn_id": "smtp_x"}, "slack_webhook": {"conn_id": "hook"}}
    alerts = load_config(write(tmp_path, doc)).alerts
    assert alerts.smtp_to == ("a@example.com",) and alerts.smtp_conn_id == "smtp_x"
    assert alerts.slack_webhook_conn_id == "hook"
    doc["alerts"] = {"smtp": {"to": ["not-an-address"]}}
    with pytest.raises(ConfigError, match=r"alerts, field 'smtp.to'"):
        load_config(write(tmp_path, doc))


@pytest.mark.parametrize(("change", "field"), [({"delete_mode": "purge"}, "delete_mode"),
                                               ({"repair_max_fraction": 2}, "repair_max_fraction")])
def test_invalid_repair_settings_are_named(tmp_path, change, field):
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    doc["pipelines"][0].update(change)
    with pytest.raises(ConfigError, match=field):
        load_config(write(tmp_path, doc))
