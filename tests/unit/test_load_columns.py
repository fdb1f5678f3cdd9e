"""What the load decides from column lists alone: schema changes named one by one, binary or CSV COPY."""

from __future__ import annotations

import pytest

from warehouse_sync.db.catalog import Column, column_definitions
from warehouse_sync.target.bulk_copy import binary_ready
from warehouse_sync.target.schema import describe_schema_changes

ID = Column("id", "bigint", "int8", True)
NOTE = Column("note", "text", "text", False)
UPDATED = Column("updated_at", "timestamp with time zone", "timestamptz", True)


def test_matching_columns_have_no_schema_changes():
    assert describe_schema_changes([ID, NOTE, UPDATED], [ID, NOTE, UPDATED]) == []


def test_column_order_alone_is_not_a_schema_change():
    assert describe_schema_changes([ID, NOTE, UPDATED], [UPDATED, ID, NOTE]) == []


def test_every_new_dropped_and_retyped_column_is_named():
    source = [ID, Column("note", "character varying(20)", "varchar", False), UPDATED,
              Column("currency", "character(3)", "bpchar", False)]
    target = [ID, NOTE, UPDATED, Column("legacy", "integer", "int4", False)]
    assert describe_schema_changes(source, target) == [
        "column 'currency' (character(3)) is new in the source",
        "column 'legacy' is gone from the source",
        "column 'note' changed type from text to character varying(20)",
    ]


def test_a_changed_precision_is_a_type_change():
    problems = describe_schema_changes([Column("amount", "numeric(18,4)", "numeric", False)],
                                       [Column("amount", "numeric(15,2)", "numeric", False)])
    assert problems == ["column 'amount' changed type from numeric(15,2) to numeric(18,4)"]


@pytest.mark.parametrize("column", [
    ID, NOTE, UPDATED,
    Column("n", "smallint", "int2", False), Column("f", "real", "float4", False),
    Column("d", "double precision", "float8", False), Column("b", "boolean", "bool", False),
    Column("born", "date", "date", False), Column("ts", "timestamp without time zone", "timestamp", False),
    Column("amount", "numeric(38,4)", "numeric", False),
    Column("v", "character varying(20)", "varchar", False), Column("c", "character(3)", "bpchar", False),
], ids=lambda c: c.sql_type)
def test_a_column_with_an_exact_binary_encoding_allows_binary_copy(column):
    assert binary_ready([ID, column])


@pytest.mark.parametrize("column", [
    Column("u", "uuid", "uuid", False), Column("j", "json", "json", False), Column("jb", "jsonb", "jsonb", False),
    Column("t", "time without time zone", "time", False), Column("amount", "numeric", "numeric", False),
    Column("wide", "numeric(39,2)", "numeric", False), Column("raw", "bytea", "bytea", False),
], ids=lambda c: c.sql_type)
def test_one_column_without_an_exact_binary_encoding_makes_the_copy_csv(column):
    assert not binary_ready([ID, NOTE, column])


def test_target_columns_keep_the_source_type_text_and_not_null():
    definitions = column_definitions([ID, Column("amount", "numeric(15,2)", "numeric", False)])
    assert definitions.as_string(None) == '"id" bigint NOT NULL,\n    "amount" numeric(15,2)'
