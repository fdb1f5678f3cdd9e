"""PostgreSQL types map to exact Arrow types (no float for money, no naive time for timestamptz)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from warehouse_sync.db.catalog import Column, arrow_schema, arrow_type, hash_inputs


@pytest.mark.parametrize(("type_name", "sql_type", "expected"), [
    ("int2", "smallint", pa.int16()),
    ("int4", "integer", pa.int32()),
    ("int8", "bigint", pa.int64()),
    ("float4", "real", pa.float32()),
    ("float8", "double precision", pa.float64()),
    ("bool", "boolean", pa.bool_()),
    ("date", "date", pa.date32()),
    ("timestamp", "timestamp without time zone", pa.timestamp("us")),
    ("timestamptz", "timestamp with time zone", pa.timestamp("us", tz="UTC")),
    ("time", "time without time zone", pa.time64("us")),
    ("numeric", "numeric(18,4)", pa.decimal128(18, 4)),
    ("numeric", "numeric(38,0)", pa.decimal128(38, 0)),
    ("numeric", "numeric(39,2)", pa.string()),
])
def test_a_postgresql_type_maps_to_its_exact_arrow_type(type_name, sql_type, expected):
    assert arrow_type(type_name, sql_type) == expected


@pytest.mark.parametrize(("type_name", "sql_type"), [
    ("numeric", "numeric"),  # no declared precision: any scale, so exact only as text
    ("text", "text"), ("varchar", "character varying(20)"), ("bpchar", "character(3)"),
    ("uuid", "uuid"), ("json", "json"), ("jsonb", "jsonb"), ("bytea", "bytea"), ("interval", "interval"),
    ("timetz", "time with time zone"),
])
def test_every_other_type_travels_as_postgresql_text(type_name, sql_type):
    assert arrow_type(type_name, sql_type) == pa.string()


def test_the_arrow_schema_keeps_column_order_and_not_null():
    columns = [Column("id", "bigint", "int8", True), Column("amount", "numeric(15,2)", "numeric", False),
               Column("updated_at", "timestamp with time zone", "timestamptz", True)]
    schema = arrow_schema(columns)
    assert schema.names == ["id", "amount", "updated_at"]
    assert schema.field("amount").type == pa.decimal128(15, 2) and schema.field("amount").nullable
    assert not schema.field("id").nullable and not schema.field("updated_at").nullable


def test_types_without_an_extended_hash_are_hashed_through_their_text():
    columns = [Column("id", "bigint", "int8", True), Column("doc", "json", "json", False),
               Column("note", "text", "text", False)]
    assert hash_inputs(columns).as_string(None) == '"r"."id", "r"."doc"::text, "r"."note"'
