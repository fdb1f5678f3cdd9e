"""One extract page: PostgreSQL's ``COPY … (FORMAT csv)`` text parsed into the table's exact Arrow types.

The bytes below are what PostgreSQL prints for a session in UTC with ISO dates (see
``warehouse_sync.db.connections.prepare_session``): an empty unquoted field is NULL, ``""`` is the
empty string, a field with a quote, comma or newline is quoted with doubled quotes, booleans are
``t``/``f``, ``timestamptz`` ends with its offset. No database is needed to check the parse.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from warehouse_sync.config import Pipeline
from warehouse_sync.db.catalog import arrow_type
from warehouse_sync.db.csv_text import parse_csv_page
from warehouse_sync.model import TableRef, Window
from warehouse_sync.sync.extract import batch_path

SCHEMA = pa.schema([
    pa.field("tenant", pa.string(), nullable=False),
    pa.field("id", pa.int64(), nullable=False),
    pa.field("amount", pa.decimal128(18, 4)),
    pa.field("note", pa.string()),
    pa.field("flag", pa.bool_()),
    pa.field("born", pa.date32()),
    pa.field("seen_at", pa.timestamp("us", tz="UTC")),
    pa.field("ratio", pa.float64()),
])
PAGE = (
    b'a,1,12345678901234.5678,"quote "" comma , newline \n end",t,1992-01-02,2026-03-29 01:30:00.123456+00,0.1\n'
    b'a,2,-0.0001,"",f,,,\n'
    b'b,3,,,,2000-02-29,1999-12-31 23:59:59+00,-1e+300\n'
)


def parsed() -> list[dict]:
    return parse_csv_page(PAGE, SCHEMA).to_pylist()


def test_the_page_has_exactly_the_table_schema():
    assert parse_csv_page(PAGE, SCHEMA).schema == SCHEMA


def test_an_empty_unquoted_field_is_null_and_a_quoted_empty_one_is_the_empty_string():
    rows = parsed()
    assert rows[1]["note"] == "" and rows[2]["note"] is None
    assert rows[1]["born"] is None and rows[1]["seen_at"] is None and rows[2]["amount"] is None


def test_quotes_commas_and_newlines_inside_a_value_are_kept():
    assert parsed()[0]["note"] == 'quote " comma , newline \n end'


def test_t_and_f_are_booleans_and_an_empty_boolean_is_null():
    assert [r["flag"] for r in parsed()] == [True, False, None]


def test_numeric_values_are_exact_decimals_not_floats():
    amounts = [r["amount"] for r in parsed()]
    assert amounts == [Decimal("12345678901234.5678"), Decimal("-0.0001"), None]
    assert all(isinstance(a, Decimal) for a in amounts[:2])


def test_timestamptz_is_a_utc_instant_with_microseconds_and_dates_are_dates():
    first, _, third = parsed()
    assert first["seen_at"] == datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=timezone.utc)
    assert first["seen_at"].utcoffset() == timedelta(0)
    assert third["seen_at"] == datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert (first["born"], third["born"]) == (date(1992, 1, 2), date(2000, 2, 29))
    assert third["ratio"] == -1e300


def test_a_timestamptz_printed_with_another_offset_is_converted_to_the_same_instant():
    schema = pa.schema([pa.field("at", pa.timestamp("us", tz="UTC"))])
    (row,) = parse_csv_page(b"2026-03-29 03:30:00+02\n", schema).to_pylist()
    assert row["at"] == datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc)


def test_time_of_day_keeps_its_microseconds():
    schema = pa.schema([pa.field("t", pa.time64("us"))])
    assert parse_csv_page(b"13:14:15.123456\n", schema).to_pylist() == [{"t": time(13, 14, 15, 123456)}]


@pytest.mark.parametrize("text", ["NULL", "N/A", "NaN"])
def test_a_text_value_that_looks_like_a_null_marker_stays_text(text):
    schema = pa.schema([pa.field("note", pa.string())])
    # PostgreSQL quotes only values with a delimiter, quote or newline, and the empty string.
    assert parse_csv_page(f"{text}\n".encode(), schema).to_pylist() == [{"note": text}]


def test_a_float_nan_stays_nan_and_infinities_stay_infinite():
    schema = pa.schema([pa.field("ratio", pa.float64())])
    values = [r["ratio"] for r in parse_csv_page(b"NaN\nInfinity\n-Infinity\n", schema).to_pylist()]
    assert values[0] is not None and math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]


def test_a_numeric_wider_than_38_digits_travels_as_its_exact_text():
    big = arrow_type("numeric", "numeric(60,9)")
    schema = pa.schema([pa.field("big", big)])
    (row,) = parse_csv_page(b"123456789012345678901234567890.123456789\n", schema).to_pylist()
    assert big == pa.string() and Decimal(row["big"]) == Decimal("123456789012345678901234567890.123456789")


def test_a_batch_file_path_is_deterministic_per_table_window_and_batch():
    pipeline = Pipeline(name="items", source=TableRef("t_src", "items"), target=TableRef("t_dst", "items"),
                        primary_key=("id",), cursor="updated_at")
    start = datetime(2026, 11, 20, tzinfo=timezone.utc)
    path = batch_path(Path("/staging"), pipeline, Window(start, start + timedelta(hours=2)), 7)
    assert path == Path("/staging/items/20261120T000000000000Z__20261120T020000000000Z/batch-00007.parquet")
    assert batch_path(Path("/staging"), pipeline, Window(None, start), 0).parent.name == "begin__20261120T000000000000Z"
