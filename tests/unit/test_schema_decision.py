"""Schema changes decided from column lists alone: which type change is a widening, and what each
policy (evolve, freeze, discard) makes of each change kind; the refusal message and the alert text."""

from __future__ import annotations

import pytest

from warehouse_sync.alerts import alert_schema_change
from warehouse_sync.config import Alerts, Pipeline
from warehouse_sync.db.catalog import Column
from warehouse_sync.model import TableRef
from warehouse_sync.target.ddl import rejection_message
from warehouse_sync.target.schema import decide, is_widening

ID = Column("id", "bigint", "int8", True)
NOTE = Column("note", "text", "text", False)
UPDATED = Column("updated_at", "timestamp with time zone", "timestamptz", True)
CURRENCY = Column("currency", "character(3)", "bpchar", False)
LEGACY = Column("legacy", "integer", "int4", False)
PIPELINE = Pipeline(name="items", source=TableRef("t_src", "items"), target=TableRef("t_dst", "items"),
                    primary_key=("id",), cursor="updated_at")


def col(sql_type: str, type_name: str, name: str = "c") -> Column:
    return Column(name, sql_type, type_name, False)


VARCHAR10, VARCHAR50 = col("character varying(10)", "varchar"), col("character varying(50)", "varchar")
VARCHAR, TEXT = col("character varying", "varchar"), col("text", "text")
SMALLINT, INTEGER, BIGINT = col("smallint", "int2"), col("integer", "int4"), col("bigint", "int8")
NUM_10_2, NUM_15_2, NUM_12_3, NUM = (col("numeric(10,2)", "numeric"), col("numeric(15,2)", "numeric"),
                                     col("numeric(12,3)", "numeric"), col("numeric", "numeric"))
TIMESTAMP, TIMESTAMPTZ = col("timestamp without time zone", "timestamp"), col("timestamp with time zone", "timestamptz")
CHAR3, REAL, DOUBLE = col("character(3)", "bpchar"), col("real", "float4"), col("double precision", "float8")

WIDENINGS = [(VARCHAR10, VARCHAR50), (VARCHAR10, TEXT), (VARCHAR10, VARCHAR), (VARCHAR, TEXT),
             (SMALLINT, INTEGER), (SMALLINT, BIGINT), (INTEGER, BIGINT), (NUM_10_2, NUM_15_2), (NUM_10_2, NUM)]


@pytest.mark.parametrize("old, new", WIDENINGS, ids=lambda c: c.sql_type)
def test_a_type_change_that_loses_nothing_is_a_widening(old, new):
    assert is_widening(old, new)


@pytest.mark.parametrize("old, new", [(new, old) for old, new in WIDENINGS] + [
    (TIMESTAMP, TIMESTAMPTZ), (TIMESTAMPTZ, TIMESTAMP), (NUM_10_2, NUM_12_3), (TEXT, INTEGER), (INTEGER, TEXT),
    (INTEGER, NUM_15_2), (CHAR3, VARCHAR10), (REAL, DOUBLE), (TEXT, TEXT), (BIGINT, BIGINT),
], ids=lambda c: c.sql_type)
def test_narrowing_incompatible_or_no_type_change_is_not_a_widening(old, new):
    assert not is_widening(old, new)


def outcomes(decision) -> list[tuple[str, str, str]]:
    return [(c.column, c.change, c.outcome) for c in decision.changes]


def test_matching_columns_in_any_order_are_no_change_under_every_policy():
    for policy in ("evolve", "freeze", "discard"):
        decision = decide([ID, NOTE, UPDATED], [UPDATED, ID, NOTE], policy)
        assert decision.changes == () and decision.columns == (ID, NOTE, UPDATED) and not decision.alters_target


@pytest.mark.parametrize("policy, outcome, columns", [
    ("evolve", "applied", (ID, NOTE, UPDATED, CURRENCY)),
    ("freeze", "rejected", (ID, NOTE, UPDATED)),
    ("discard", "ignored", (ID, NOTE, UPDATED)),
])
def test_a_new_source_column(policy, outcome, columns):
    decision = decide([ID, NOTE, UPDATED, CURRENCY], [ID, NOTE, UPDATED], policy)
    assert outcomes(decision) == [("currency", "added", outcome)]
    assert decision.changes[0].new_type == "character(3)" and decision.changes[0].old_type is None
    assert decision.columns == columns  # what the load copies
    assert decision.add == ((CURRENCY,) if policy == "evolve" else ())


@pytest.mark.parametrize("old, new", [(VARCHAR10, VARCHAR50), (INTEGER, BIGINT)], ids=["varchar", "integer"])
@pytest.mark.parametrize("policy, outcome", [("evolve", "applied"), ("freeze", "rejected"), ("discard", "rejected")])
def test_a_widened_type(policy, outcome, old, new):
    decision = decide([ID, new, UPDATED], [ID, old, UPDATED], policy)
    assert outcomes(decision) == [("c", "widened", outcome)]
    assert (decision.changes[0].old_type, decision.changes[0].new_type) == (old.sql_type, new.sql_type)
    assert decision.widen == ((new,) if policy == "evolve" else ())


@pytest.mark.parametrize("policy", ["evolve", "freeze", "discard"])
@pytest.mark.parametrize("old, new, kind", [(BIGINT, INTEGER, "narrowed"), (VARCHAR50, VARCHAR10, "narrowed"),
                                            (TEXT, INTEGER, "incompatible"), (TIMESTAMP, TIMESTAMPTZ, "incompatible")],
                         ids=["bigint->integer", "varchar(50)->varchar(10)", "text->integer", "timestamp->timestamptz"])
def test_a_narrowing_or_incompatible_type_change_is_rejected_under_every_policy(policy, old, new, kind):
    decision = decide([ID, new, UPDATED], [ID, old, UPDATED], policy)
    assert outcomes(decision) == [("c", kind, "rejected")] and not decision.alters_target


@pytest.mark.parametrize("policy, nullable, not_null", [
    ("evolve", "kept", "kept"), ("freeze", "rejected", "rejected"), ("discard", "kept", "rejected"),
])
def test_a_dropped_source_column(policy, nullable, not_null):
    decision = decide([ID, NOTE, UPDATED], [ID, NOTE, LEGACY, UPDATED], policy)
    assert outcomes(decision) == [("legacy", "dropped", nullable)] and decision.relax == ()
    assert decision.columns == (ID, NOTE, UPDATED)
    required = Column("legacy", "integer", "int4", True)
    decision = decide([ID, NOTE, UPDATED], [ID, NOTE, required, UPDATED], policy)
    assert outcomes(decision) == [("legacy", "dropped", not_null)]
    assert decision.relax == (("legacy",) if policy == "evolve" else ())  # its NOT NULL dropped: no longer filled


def test_one_rejected_change_refuses_the_whole_load_so_nothing_else_is_applied():
    decision = decide([ID, Column("note", "integer", "int4", False), UPDATED, CURRENCY], [ID, NOTE, UPDATED], "evolve")
    assert outcomes(decision) == [("currency", "added", "rejected"), ("note", "incompatible", "rejected")]
    assert "refused for column(s) note" in decision.changes[0].detail
    assert not decision.alters_target


def test_the_refusal_names_table_column_both_types_and_the_way_out():
    decision = decide([ID, Column("note", "integer", "int4", False), UPDATED], [ID, NOTE, UPDATED], "evolve")
    message = rejection_message(PIPELINE, decision)
    assert "t_src.items" in message and "t_dst.items" in message and "'evolve'" in message
    assert "column 'note' changed type from text to integer" in message
    assert "Nothing was loaded" in message
    assert "ALTER TABLE t_dst.items ALTER COLUMN note TYPE integer" in message and "full_snapshot=true" in message


def test_under_freeze_a_new_column_names_both_ways_out():
    message = rejection_message(PIPELINE, decide([ID, NOTE, UPDATED, CURRENCY], [ID, NOTE, UPDATED], "freeze"))
    assert "column 'currency' (character(3)) is new in the source" in message
    assert "ADD COLUMN" in message and "schema_changes: evolve" in message


CONTEXT = {"run_id": "scheduled__2026-11-20T02:00:00+00:00"}


def test_an_applied_change_alerts_one_line_per_column(caplog):
    decision = decide([ID, Column("note", "character varying(50)", "varchar", False), UPDATED, CURRENCY],
                      [ID, Column("note", "character varying(10)", "varchar", False), UPDATED, LEGACY], "evolve")
    report = {"table": "t_dst.items", "source": "t_src.items", "policy": "evolve",
              "changes": [c.to_dict() for c in decision.changes]}
    with caplog.at_level("WARNING", logger="warehouse_sync.alerts"):
        assert alert_schema_change(CONTEXT, Alerts(), "t_dst.items", report) == []
    (record,) = [r for r in caplog.records if r.name == "warehouse_sync.alerts"]
    subject, *lines = record.getMessage().splitlines()
    assert subject == "ALERT [warehouse-sync] t_dst.items: source schema changed (applied, kept)"
    assert lines[0] == "table t_dst.items (source t_src.items), schema_changes: evolve"
    assert lines[-3].startswith("column currency: added (character(3)): applied, added to the target")
    assert lines[-2].startswith("column legacy: dropped (integer): kept, kept in the target")
    assert lines[-1] == ("column note: widened (character varying(10) -> character varying(50)): applied, "
                         "target type widened; every value kept")


def test_a_rejected_change_leaves_its_alert_to_the_failed_task(caplog):
    """The load fails at once (no retries); its failure alert carries the message, so one alert, not two."""
    decision = decide([ID, Column("note", "integer", "int4", False), UPDATED], [ID, NOTE, UPDATED], "evolve")
    report = {"table": "t_dst.items", "policy": "evolve", "changes": [c.to_dict() for c in decision.changes]}
    with caplog.at_level("WARNING", logger="warehouse_sync.alerts"):
        assert alert_schema_change(CONTEXT, Alerts(), "t_dst.items", report) == []
    assert not [r for r in caplog.records if r.name == "warehouse_sync.alerts" and r.levelname == "WARNING"]
