"""The warehouse type policy: the target type of each kind of source column, and the text form of staged values."""

from __future__ import annotations

import pyarrow as pa
import pytest

from warehouse_sync.db.catalog import Column, arrow_schema
from warehouse_sync.target.types import kept_as_found, looked_up, warehouse_type

BUILT_IN = {"integer": "int4", "numeric(12,2)": "numeric", "integer[]": "_int4", "jsonb": "jsonb", "text": "text",
            "timestamp with time zone": "timestamptz"}
WITH_POSTGIS = {**BUILT_IN, "geometry": "geometry", "geography(Point,4326)": "geography",
                "geometry(Point,4326)[]": "_geometry"}


def column(sql_type: str, type_name: str, base_type: str = "", kind: str = "") -> Column:
    return Column("c", sql_type, type_name, False, base_type or sql_type, kind)


@pytest.mark.parametrize(("source", "expected"), [
    (column("integer", "int4"), ("integer", "int4")),
    (column("numeric(12,2)", "numeric"), ("numeric(12,2)", "numeric")),
    (column("integer[]", "_int4"), ("integer[]", "_int4")),
    (column("jsonb", "jsonb"), ("jsonb", "jsonb")),
    (column("timestamp with time zone", "timestamptz"), ("timestamp with time zone", "timestamptz")),
])
def test_a_type_the_warehouse_has_keeps_its_name_and_modifiers(source, expected):
    assert warehouse_type(source, BUILT_IN) == expected


def test_an_enum_is_text_and_an_array_of_enums_is_text_array_even_where_the_warehouse_has_the_type():
    known = {**BUILT_IN, "app.mood": "mood", "app.mood[]": "_mood"}
    assert warehouse_type(column("app.mood", "mood", kind="enum"), known) == ("text", "text")
    assert warehouse_type(column("app.mood[]", "_mood", kind="enum[]"), known) == ("text[]", "_text")


def test_a_domain_is_its_base_type_followed_to_the_end():
    assert warehouse_type(column("app.posint", "posint", "integer"), BUILT_IN) == ("integer", "int4")
    assert warehouse_type(column("app.price", "price", "numeric(12,2)"), BUILT_IN) == ("numeric(12,2)", "numeric")
    assert warehouse_type(column("app.good_mood", "good_mood", "app.mood", "enum"), BUILT_IN) == ("text", "text")


def test_postgis_types_are_kept_where_the_warehouse_has_postgis():
    assert warehouse_type(column("geometry", "geometry"), WITH_POSTGIS) == ("geometry", "geometry")
    assert warehouse_type(column("geography(Point,4326)", "geography"), WITH_POSTGIS) == \
        ("geography(Point,4326)", "geography")
    assert warehouse_type(column("geometry(Point,4326)[]", "_geometry"), WITH_POSTGIS) == \
        ("geometry(Point,4326)[]", "_geometry")


def test_postgis_types_are_their_hex_ewkb_text_where_the_warehouse_lacks_postgis():
    assert warehouse_type(column("geometry", "geometry"), BUILT_IN) == ("text", "text")
    assert warehouse_type(column("geography(Point,4326)", "geography"), BUILT_IN) == ("text", "text")
    assert warehouse_type(column("geometry(Point,4326)[]", "_geometry"), BUILT_IN) == ("text[]", "_text")


def test_only_the_types_whose_presence_matters_are_looked_up_in_the_warehouse():
    columns = [column("integer", "int4"), column("app.posint", "posint", "integer"),
               column("app.mood", "mood", kind="enum"), column("app.mood[]", "_mood", kind="enum[]"),
               column("geometry", "geometry")]
    assert looked_up(columns) == ["geometry", "integer"]


def test_a_target_column_that_already_has_the_source_type_keeps_it():
    source = [Column("mood", "app.mood", "mood", False, "app.mood", "enum"),
              Column("pos", "app.posint", "posint", False, "integer")]
    wanted = [Column("mood", "text", "text", False, "text"), Column("pos", "integer", "int4", False, "integer")]
    target = [Column("mood", "app.mood", "mood", False, "app.mood", "enum"), Column("pos", "integer", "int4", False)]
    assert [c.sql_type for c in kept_as_found(wanted, source, target)] == ["app.mood", "integer"]
    assert kept_as_found(wanted, source, []) == wanted


def test_the_text_form_of_a_schema_turns_only_types_with_values_arrow_cannot_hold_into_strings():
    columns = [Column(n, s, t, nn) for n, s, t, nn in [
        ("i", "bigint", "int8", True), ("r", "double precision", "float8", False), ("b", "boolean", "bool", False),
        ("n", "numeric(12,2)", "numeric", False), ("d", "date", "date", False),
        ("ts", "timestamp with time zone", "timestamptz", True), ("t", "time without time zone", "time", False),
        ("s", "text", "text", False)]]
    as_text = arrow_schema(columns, as_text=True)
    assert as_text.types == [pa.int64(), pa.float64(), pa.bool_(), pa.string(), pa.string(), pa.string(),
                             pa.string(), pa.string()]
    assert as_text.names == arrow_schema(columns).names
    assert [f.nullable for f in as_text] == [f.nullable for f in arrow_schema(columns)]
