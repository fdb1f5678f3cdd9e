"""Config: one YAML file validated into frozen pydantic models; every error names file, pipeline, field."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from warehouse_sync.config import Alerts, CdcSettings, ConfigError, Pipeline, SyncConfig, load_config
from warehouse_sync.model import TableRef

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "include" / "pipelines.yaml"

GOOD = {
    "defaults": {"batch_size": 1000},
    "pipelines": [
        {"name": "orders", "source": "tpch.orders", "primary_key": ["o_orderkey"], "cursor": "updated_at",
         "target": "dw.orders"},
        {"name": "lineitem", "source": "tpch.lineitem", "primary_key": ["l_orderkey", "l_linenumber"],
         "cursor": "updated_at", "target": "dw.lineitem", "batch_size": 7},
    ],
}


def good():
    return yaml.safe_load(yaml.safe_dump(GOOD))


def write(tmp_path, doc):
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return path


def error_of(path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_valid_file_gives_frozen_pipelines_with_defaults_applied(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    orders, lineitem = config.pipelines
    assert orders.batch_size == 1000 and lineitem.batch_size == 7
    assert lineitem.primary_key == ("l_orderkey", "l_linenumber")
    assert orders.source == TableRef("tpch", "orders")
    assert str(orders.target) == "dw.orders" and orders.dag_id == "sync_orders"
    with pytest.raises(ValidationError):
        orders.batch_size = 5  # type: ignore[misc]
    hash(orders)


def test_shipped_pipelines_file_is_valid():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shipped file uses no deprecated key
        config = load_config(SHIPPED)
    assert [p.name for p in config.pipelines] == ["tpch_orders", "tpch_lineitem"]
    assert all(p.expectations for p in config.pipelines)


def test_load_config_takes_a_str_or_path_and_requires_one(tmp_path):
    path = write(tmp_path, GOOD)
    assert load_config(str(path)) == load_config(path)
    assert load_config(str(path)).path == path
    with pytest.raises(TypeError):
        load_config()  # type: ignore[call-arg]


def test_pipelines_can_be_built_in_python_with_table_refs_and_tuples():
    p = Pipeline(name="items", source=TableRef("t_src", "items"), target=TableRef("t_dw", "items"),
                 primary_key=("tenant", "id"), cursor="updated_at", settle_timeout_seconds=0, batch_size=3)
    assert (p.batch_size, p.settle_timeout_seconds, p.page_size) == (3, 0, 20_000)
    assert p.model_copy(update={"page_size": 2}).page_size == 2
    assert Pipeline(name="items", source="a.b", target="c.d", primary_key="id", cursor="u").primary_key == ("id",)


def test_a_pipeline_round_trips_through_model_dump(tmp_path):
    for pipeline in load_config(SHIPPED).pipelines:
        dumped = pipeline.model_dump(mode="json")
        assert dumped["source"] == str(pipeline.source) and dumped["expectations"][0]["expect"]
        assert Pipeline.model_validate(dumped) == pipeline


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"primary_key": []}, "primary_key"),
        ({"primary_key": ["a", "a"]}, "primary_key"),
        ({"primary_key": [""]}, "primary_key"),
        ({"source": "orders"}, "source"),
        ({"target": "a.b.c"}, "target"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": "many"}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"settle_timeout_seconds": -1}, "settle_timeout_seconds"),
        ({"cursor": "o_orderkey"}, "cursor"),
        ({"cursor": ""}, "cursor"),
        ({"colour": "red"}, "colour"),
        ({"name": "Bad Name"}, "name"),
        ({"tags": "tpch"}, "tags"),
        ({"reconcile_full_table": "yes"}, "reconcile_full_table"),
        ({"per_run_table_check": "rows"}, "per_run_table_check"),
        ({"volume_tolerance": 10}, "volume_tolerance"),
        ({"volume_tolerance": 0}, "volume_tolerance"),
        ({"cursor_time_zone": "Mars/Olympus_Mons"}, "cursor_time_zone"),
        ({"cursor_time_zone": "../etc"}, "cursor_time_zone"),
        ({"page_bytes": 0}, "page_bytes"),
    ],
)
def test_invalid_entry_error_names_file_pipeline_and_field(tmp_path, change, field):
    doc = good()
    doc["pipelines"][0].update(change)
    path = write(tmp_path, doc)
    message = error_of(path)
    assert str(path) in message and f"field '{field}'" in message
    assert "pipeline 'orders'" in message or "pipeline 'Bad Name'" in message


def test_a_cursor_time_zone_is_an_iana_name_this_system_knows(tmp_path):
    doc = good()
    doc["pipelines"][0]["cursor_time_zone"] = "Europe/Berlin"
    assert load_config(write(tmp_path, doc)).pipelines[0].cursor_time_zone == "Europe/Berlin"
    doc["pipelines"][0]["cursor_time_zone"] = "Europe/Nowhere"
    assert "unknown time zone 'Europe/Nowhere'" in error_of(write(tmp_path, doc))


def test_error_message_is_short_and_human(tmp_path):
    doc = good()
    doc["pipelines"][0]["batch_size"] = 0
    path = write(tmp_path, doc)
    assert error_of(path) == (f"{path}: pipeline 'orders', field 'batch_size': "
                              "Input should be greater than or equal to 1 (got 0)")


def test_a_bool_where_an_int_is_expected_is_an_error(tmp_path):
    for field in ("batch_size", "page_size", "settle_timeout_seconds", "repair_max_rows", "repair_max_fraction"):
        doc = good()
        doc["pipelines"][0][field] = True
        assert f"pipeline 'orders', field '{field}'" in error_of(write(tmp_path, doc))
    with pytest.raises(ValidationError):
        Pipeline(name="x", source="a.b", target="c.d", primary_key=("id",), cursor="u", batch_size=True)


def test_unknown_key_lists_the_allowed_ones(tmp_path):
    doc = good()
    doc["pipelines"][0]["bach_size"] = 10
    message = error_of(write(tmp_path, doc))
    assert ("pipeline 'orders', field 'bach_size': unknown field (allowed: alerts, batch_size, cdc, columns, cursor, "
            in message)
    assert "volume_tolerance" in message and "checks" not in message

    doc = good()
    doc["defaults"] = {"name": "everything"}
    message = error_of(write(tmp_path, doc))
    assert ("defaults, field 'name': unknown field (allowed: alerts, batch_size, cdc, columns, cursor_time_zone, "
            "delete_mode, expectations" in message)

    doc = good()
    doc["pipeline"] = doc.pop("pipelines")  # a typo of a top-level key is named as such
    assert "unknown top-level key(s) pipeline; allowed: alerts, defaults, pipelines" in error_of(write(tmp_path, doc))


def test_missing_required_field_is_named(tmp_path):
    doc = good()
    del doc["pipelines"][1]["cursor"]
    with pytest.raises(ConfigError, match=r"pipeline 'lineitem', field 'cursor': required"):
        load_config(write(tmp_path, doc))


def test_a_pipeline_without_a_name_is_numbered(tmp_path):
    doc = good()
    del doc["pipelines"][1]["name"]
    assert "pipeline #2, field 'name': required" in error_of(write(tmp_path, doc))
    doc["pipelines"][1] = ["not", "a", "mapping"]
    assert "pipeline #2: expected a mapping, got list" in error_of(write(tmp_path, doc))


def test_several_problems_are_reported_together(tmp_path):
    doc = good()
    doc["pipelines"][0]["batch_size"] = 0
    doc["pipelines"][1]["delete_mode"] = "purge"
    message = error_of(write(tmp_path, doc))
    assert "pipeline 'orders', field 'batch_size'" in message
    assert "; pipeline 'lineitem', field 'delete_mode'" in message


def test_a_bad_default_is_named_under_defaults(tmp_path):
    doc = good()
    doc["defaults"] = {"page_size": 0}
    path = write(tmp_path, doc)
    assert error_of(path) == (f"{path}: defaults, field 'page_size': "
                              "Input should be greater than or equal to 1 (got 0)")


def test_defaults_live_in_one_place_and_the_file_only_overrides(tmp_path):
    assert Pipeline.model_fields["page_size"].default == 20_000
    assert Pipeline.model_fields["settle_timeout_seconds"].default == 30
    doc = good()
    del doc["defaults"]
    orders = load_config(write(tmp_path, doc)).pipelines[0]
    for name, field in Pipeline.model_fields.items():
        if not field.is_required():
            assert getattr(orders, name) == field.default, name
    doc["defaults"] = {"page_size": 500, "tags": ["x"]}
    doc["pipelines"][1]["page_size"] = 9
    orders, lineitem = load_config(write(tmp_path, doc)).pipelines
    assert (orders.page_size, lineitem.page_size, orders.tags) == (500, 9, ("x",))
    # the shipped file repeats no default
    shipped = yaml.safe_load(SHIPPED.read_text())
    for name, value in (shipped.get("defaults") or {}).items():
        assert value != Pipeline.model_fields[name].default, name


def test_old_checks_key_still_works_with_a_deprecation_warning(tmp_path):
    doc = good()
    doc["pipelines"][0]["checks"] = [{"expect": "column_values_to_not_be_null", "column": "o_custkey"}]
    path = write(tmp_path, doc)
    with pytest.warns(DeprecationWarning, match="rename it to 'expectations'") as record:
        orders = load_config(path).pipelines[0]
    message = str(record[0].message)
    assert str(path) in message and "pipeline 'orders'" in message and "'checks'" in message
    assert [e.expect for e in orders.expectations] == ["column_values_to_not_be_null"]


def test_checks_and_expectations_together_is_an_error(tmp_path):
    doc = good()
    entry = [{"expect": "column_values_to_not_be_null", "column": "o_custkey"}]
    doc["pipelines"][0].update(checks=entry, expectations=entry)
    with pytest.raises(ConfigError, match=r"pipeline 'orders', field 'checks': both 'checks' and 'expectations'"):
        load_config(write(tmp_path, doc))


def test_quoting_characters_in_table_names_are_plain_names(tmp_path):
    doc = good()
    doc["pipelines"][0]["source"] = 'a"b.c;d'
    orders = load_config(write(tmp_path, doc)).pipelines[0]
    assert orders.source == TableRef('a"b', "c;d")


def test_duplicate_pipeline_names_are_rejected(tmp_path):
    doc = good()
    doc["pipelines"][1]["name"] = "orders"
    with pytest.raises(ConfigError, match="pipeline 'orders', field 'name': used twice"):
        load_config(write(tmp_path, doc))


def test_unparseable_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "pipelines: [unclosed")
    with pytest.raises(ConfigError, match=f"{path}: invalid YAML"):
        load_config(path)


@pytest.mark.parametrize("text", ["", "- just a list", "pipelines: {orders: 1}"])
def test_a_file_without_a_pipelines_list_is_rejected(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"{path}: expected a mapping with a 'pipelines' list"):
        load_config(path)


def test_an_unreadable_file_names_the_file(tmp_path):
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=f"{path}: cannot read pipeline config"):
        load_config(path)


def test_alert_channels_are_parsed_and_bad_ones_named(tmp_path):
    doc = good()
    assert load_config(write(tmp_path, doc)).alerts == Alerts()
    doc["alerts"] = {"smtp": {"to": ["a@example.com"], "conn_id": "smtp_x"}, "slack_webhook": {"conn_id": "hook"}}
    alerts = load_config(write(tmp_path, doc)).alerts
    assert alerts.smtp_to == ("a@example.com",) and alerts.smtp_conn_id == "smtp_x"
    assert alerts.smtp_from == "warehouse-sync@localhost" and alerts.slack_webhook_conn_id == "hook"
    doc["alerts"] = {"smtp": {"to": "b@example.com", "from": "ws@example.com"}}
    alerts = load_config(write(tmp_path, doc)).alerts
    assert (alerts.smtp_to, alerts.smtp_from) == (("b@example.com",), "ws@example.com")
    assert alerts.slack_webhook_conn_id is None
    doc["alerts"] = {"smtp": {"to": ["not-an-address"]}}
    with pytest.raises(ConfigError, match=r"alerts, field 'smtp.to' entry 1: expected an e-mail address"):
        load_config(write(tmp_path, doc))
    doc["alerts"] = {"smtp": {"conn_id": "smtp_x"}}
    with pytest.raises(ConfigError, match=r"alerts, field 'smtp.to': at least one recipient is required"):
        load_config(write(tmp_path, doc))
    doc["alerts"] = {"smtp": {"to": ["a@example.com"], "cc": ["b@example.com"]}}
    with pytest.raises(ConfigError, match=r"alerts, field 'smtp.cc': unknown field \(allowed: conn_id, from, to\)"):
        load_config(write(tmp_path, doc))
    doc["alerts"] = {"teams": {}}
    with pytest.raises(ConfigError, match=r"alerts, field 'teams': unknown field "
                                                r"\(allowed: channels, default, slack_webhook, smtp\)"):
        load_config(write(tmp_path, doc))


@pytest.mark.parametrize(("change", "field"), [({"delete_mode": "purge"}, "delete_mode"),
                                               ({"repair_max_fraction": 2}, "repair_max_fraction"),
                                               ({"repair_max_fraction": 0}, "repair_max_fraction"),
                                               ({"repair_max_rows": -1}, "repair_max_rows")])
def test_invalid_repair_settings_are_named(tmp_path, change, field):
    doc = good()
    doc["pipelines"][0].update(change)
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        load_config(write(tmp_path, doc))


def test_a_pipeline_is_found_by_name_source_or_target(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert isinstance(config, SyncConfig)
    assert config.pipeline("orders") is config.pipeline("tpch.orders") is config.pipeline("dw.orders")
    with pytest.raises(ConfigError, match="no pipeline named 'nope'"):
        config.pipeline("nope")


def test_importing_the_config_package_stays_cheap():
    code = ("import sys, warehouse_sync.config\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('airflow', 'psycopg', 'pyarrow', "
            "'great_expectations', 'sqlalchemy')]\n"
            "assert not heavy, heavy\n")
    env_path = str(REPO / "plugins")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": env_path})


def test_schema_changes_evolve_by_default_and_take_only_the_three_policies(tmp_path):
    assert Pipeline.model_fields["schema_changes"].default == "evolve"
    doc = good()
    doc["pipelines"][0]["schema_changes"] = "freeze"
    doc["pipelines"][1]["schema_changes"] = "discard"
    orders, lineitem = load_config(write(tmp_path, doc)).pipelines
    assert (orders.schema_changes, lineitem.schema_changes) == ("freeze", "discard")
    doc["pipelines"][0]["schema_changes"] = "ignore"
    message = error_of(write(tmp_path, doc))
    assert "pipeline 'orders', field 'schema_changes'" in message and "'evolve', 'freeze' or 'discard'" in message


def test_each_run_checks_the_table_by_keys_unless_configured_otherwise(tmp_path):
    doc = good()
    doc["pipelines"][1]["per_run_table_check"] = "none"
    orders, lineitem = load_config(write(tmp_path, doc)).pipelines
    assert orders.per_run_table_check == "keys" and lineitem.per_run_table_check == "none"


def test_a_cdc_pipeline_checks_no_keys_per_run_unless_configured_since_its_deletes_come_through_the_slot(tmp_path):
    doc = good()
    doc["pipelines"][0]["mode"] = "cdc"
    doc["pipelines"][1].update(mode="cdc", per_run_table_check="keys")
    orders, lineitem = load_config(write(tmp_path, doc)).pipelines
    assert (orders.per_run_table_check, lineitem.per_run_table_check) == ("none", "keys")
    doc = good()
    doc["defaults"]["per_run_table_check"] = "full"
    doc["pipelines"][0]["mode"] = "cdc"
    assert load_config(write(tmp_path, doc)).pipelines[0].per_run_table_check == "full"
    assert Pipeline(name="p", source=TableRef("s", "t"), target=TableRef("w", "t"), primary_key=("id",),
                    cursor="updated_at", mode="cdc").per_run_table_check == "none"


@pytest.mark.parametrize(("where", "old", "new"), [("pipeline", True, "full"), ("pipeline", False, "none"),
                                                   ("defaults", True, "full")])
def test_old_reconcile_full_table_key_still_loads_with_a_deprecation_warning(tmp_path, where, old, new):
    doc = good()
    (doc["pipelines"][0] if where == "pipeline" else doc["defaults"])["reconcile_full_table"] = old
    path = write(tmp_path, doc)
    with pytest.warns(DeprecationWarning, match=f"'reconcile_full_table' is deprecated; it means "
                                                f"'per_run_table_check: {new}'"):
        config = load_config(path)
    assert config.pipelines[0].per_run_table_check == new


def test_reconcile_full_table_and_per_run_table_check_together_is_an_error(tmp_path):
    doc = good()
    doc["pipelines"][0].update(reconcile_full_table=True, per_run_table_check="keys")
    with pytest.raises(ConfigError, match=r"pipeline 'orders', field 'reconcile_full_table': both"):
        load_config(write(tmp_path, doc))


def test_a_nested_cdc_block_is_read_from_the_file_and_the_keys_it_omits_keep_their_defaults(tmp_path):
    assert Pipeline.model_fields["cdc"].default == CdcSettings()
    assert CdcSettings() == CdcSettings(chunk_changes=50_000, max_lag_seconds=3600, max_retained_wal_bytes=1 << 30)
    doc = good()
    doc["pipelines"][0].update(mode="cdc", cdc={"chunk_changes": 1000, "max_lag_seconds": 60})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the nested block is not deprecated
        orders, lineitem = load_config(write(tmp_path, doc)).pipelines
    assert orders.cdc == CdcSettings(chunk_changes=1000, max_lag_seconds=60)
    assert orders.cdc.max_retained_wal_bytes == 1 << 30 and lineitem.cdc == CdcSettings()
    assert (orders.mode, orders.cdc_slot) == ("cdc", "ws_orders")
    with pytest.raises(ValidationError):
        orders.cdc.chunk_changes = 5  # type: ignore[misc]
    hash(orders)
    assert Pipeline.model_validate(orders.model_dump(mode="json")) == orders


def test_a_pipelines_cdc_block_merges_key_by_key_over_the_defaults_cdc_block(tmp_path):
    doc = good()
    doc["defaults"]["cdc"] = {"chunk_changes": 10, "max_lag_seconds": 20}
    doc["pipelines"][1]["cdc"] = {"max_lag_seconds": 5, "max_retained_wal_bytes": 7}
    orders, lineitem = load_config(write(tmp_path, doc)).pipelines
    assert orders.cdc == CdcSettings(chunk_changes=10, max_lag_seconds=20)
    assert lineitem.cdc == CdcSettings(chunk_changes=10, max_lag_seconds=5, max_retained_wal_bytes=7)


@pytest.mark.parametrize(("old", "new"), [("slot_chunk_changes", "chunk_changes"),
                                          ("slot_max_lag_seconds", "max_lag_seconds"),
                                          ("slot_max_retained_wal_bytes", "max_retained_wal_bytes")])
def test_flat_cdc_keys_still_load_with_a_deprecation_warning_naming_the_new_key(tmp_path, old, new):
    doc = good()
    doc["pipelines"][0][old] = 3
    path = write(tmp_path, doc)
    with pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated; move it into the 'cdc:' block as "
                                                f"'cdc.{new}'") as record:
        orders = load_config(path).pipelines[0]
    message = str(record[0].message)
    assert str(path) in message and "pipeline 'orders'" in message
    assert getattr(orders.cdc, new) == 3


def test_flat_cdc_keys_in_defaults_warn_and_merge_with_a_pipelines_cdc_block(tmp_path):
    doc = good()
    doc["defaults"].update(slot_chunk_changes=10, slot_max_lag_seconds=20)
    doc["pipelines"][1].update(slot_max_lag_seconds=5, cdc={"max_retained_wal_bytes": 7})
    path = write(tmp_path, doc)
    with pytest.warns(DeprecationWarning) as record:
        orders, lineitem = load_config(path).pipelines
    messages = [str(w.message) for w in record]
    assert f"{path}: defaults: the key 'slot_chunk_changes' is deprecated; move it into the 'cdc:' block as " \
           "'cdc.chunk_changes'" in messages
    assert any("pipeline 'lineitem'" in m and "'cdc.max_lag_seconds'" in m for m in messages)
    assert orders.cdc == CdcSettings(chunk_changes=10, max_lag_seconds=20)
    assert lineitem.cdc == CdcSettings(chunk_changes=10, max_lag_seconds=5, max_retained_wal_bytes=7)


def test_a_bad_flat_cdc_value_is_named_by_the_key_the_file_gave(tmp_path):
    doc = good()
    doc["pipelines"][0]["slot_max_lag_seconds"] = 0
    path = write(tmp_path, doc)
    with pytest.warns(DeprecationWarning):
        message = error_of(path)
    assert message == (f"{path}: pipeline 'orders', field 'slot_max_lag_seconds': "
                       "Input should be greater than or equal to 1 (got 0)")


@pytest.mark.parametrize("where", ["pipeline", "defaults"])
def test_a_flat_cdc_key_and_its_nested_key_together_is_an_error_naming_the_pipeline(tmp_path, where):
    doc = good()
    (doc["pipelines"][0] if where == "pipeline" else doc["defaults"]).update(
        slot_chunk_changes=3, cdc={"chunk_changes": 4})
    path = write(tmp_path, doc)
    message = error_of(path)
    owner = "pipeline 'orders'" if where == "pipeline" else "defaults"
    assert message.startswith(f"{path}: ")
    assert (f"{owner}, field 'slot_chunk_changes': both 'slot_chunk_changes' and 'cdc.chunk_changes' given; "
            "keep only 'cdc.chunk_changes'") in message


def test_a_bad_nested_cdc_value_names_file_pipeline_and_the_field_path(tmp_path):
    doc = good()
    doc["pipelines"][0]["cdc"] = {"max_lag_seconds": 0}
    path = write(tmp_path, doc)
    assert error_of(path) == (f"{path}: pipeline 'orders', field 'cdc.max_lag_seconds': "
                              "Input should be greater than or equal to 1 (got 0)")
    doc["pipelines"][0]["cdc"] = {"max_lag_seconds": "1h", "chunk_size": 5}
    message = error_of(write(tmp_path, doc))
    assert "pipeline 'orders', field 'cdc.max_lag_seconds': Input should be a valid integer" in message
    assert ("pipeline 'orders', field 'cdc.chunk_size': unknown field "
            "(allowed: chunk_changes, max_lag_seconds, max_retained_wal_bytes)") in message
    doc["pipelines"][0]["cdc"] = 5
    assert "pipeline 'orders', field 'cdc': expected a mapping (got 5)" in error_of(write(tmp_path, doc))
    doc = good()
    doc["defaults"]["cdc"] = {"max_retained_wal_bytes": True}  # strict: a bool is not an int
    assert "defaults, field 'cdc.max_retained_wal_bytes'" in error_of(write(tmp_path, doc))


def test_flat_cdc_keyword_arguments_still_build_a_pipeline_with_a_deprecation_warning():
    values = dict(name="docs", source="a.b", target="c.d", primary_key="id", cursor="u", mode="cdc")
    with pytest.warns(DeprecationWarning, match=r"pipeline 'docs': the key 'slot_chunk_changes' is deprecated; "
                                                r"use 'cdc.chunk_changes'"):
        p = Pipeline(**values, slot_chunk_changes=3, cdc=CdcSettings(max_lag_seconds=9))
    assert p.cdc == CdcSettings(chunk_changes=3, max_lag_seconds=9)
    with pytest.warns(DeprecationWarning, match="'cdc.max_retained_wal_bytes'"):
        assert Pipeline.model_validate({**values, "slot_max_retained_wal_bytes": 1}).cdc.max_retained_wal_bytes == 1
    with pytest.raises(ValidationError, match="both 'slot_max_lag_seconds' and 'cdc.max_lag_seconds' given"):
        Pipeline(**values, slot_max_lag_seconds=3, cdc={"max_lag_seconds": 4})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Pipeline(**values, cdc={"chunk_changes": 3}).cdc.chunk_changes == 3


def test_key_check_slices_defaults_to_auto_and_takes_a_count_or_auto_only(tmp_path):
    orders, _ = load_config(write(tmp_path, GOOD)).pipelines
    assert (orders.key_check_slices, orders.key_check_slice_keys) == ("auto", 4_000_000)
    doc = good()
    doc["pipelines"][0]["key_check_slices"] = 12
    assert load_config(write(tmp_path, doc)).pipelines[0].key_check_slices == 12
    for bad in ("fast", 0, "12"):
        doc["pipelines"][0]["key_check_slices"] = bad
        message = error_of(write(tmp_path, doc))
        assert "pipelines.yaml" in message and "orders" in message and "key_check_slices" in message, message
