"""Extract writes Parquet in the table's exact Arrow types; a page never exceeds page_size rows."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
from helpers import T0, create_items, items_pipeline, simple_rows

from warehouse_sync.db.catalog import arrow_schema, describe_source
from warehouse_sync.model import Batch, Window
from warehouse_sync.sync.extract import extract_batch, read_pages

TRICKY = [
    ("a", 1, Decimal("12345678901234.5678"), 'quote " comma , newline \n end', True, date(1992, 1, 2),
     datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=timezone.utc), 0.1, T0),
    ("a", 2, Decimal("-0.0001"), "", False, None, None, None, T0 + timedelta(seconds=1)),
    ("b", 3, None, None, None, date(2000, 2, 29), datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
     -1e300, T0 + timedelta(seconds=2)),
]


def test_arrow_schema_is_exact_for_numeric_timestamptz_date_and_text(source):
    create_items(source, TRICKY)
    pipeline = items_pipeline()
    schema = arrow_schema(describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor))
    assert schema.field("amount").type == pa.decimal128(18, 4)
    assert schema.field("seen_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("born").type == pa.date32()
    assert schema.field("note").type == pa.string()
    assert schema.field("ratio").type == pa.float64()
    assert not schema.field("id").nullable and schema.field("note").nullable


def test_values_round_trip_through_parquet_exactly_with_nulls_distinct_from_empty(source, tmp_path):
    create_items(source, TRICKY)
    pipeline = items_pipeline()
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    written = extract_batch(source, pipeline, columns, Window(T0, T0 + timedelta(hours=1)), Batch(0, None, None),
                            tmp_path)
    assert written.rows == 3 and written.bytes > 0
    rows = pq.read_table(written.files[0].path).to_pylist()
    assert [(r["tenant"], r["id"], r["amount"], r["note"], r["flag"], r["born"], r["seen_at"], r["ratio"])
            for r in rows] == [row[:8] for row in TRICKY]
    assert rows[0]["updated_at"] == T0 and rows[0]["seen_at"].utcoffset() == timedelta(0)


def test_pages_are_bounded_by_page_size_and_continue_by_keyset(source):
    create_items(source, simple_rows(23))
    pipeline = items_pipeline(page_size=5)
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    pages = list(read_pages(source, pipeline, columns, Window(T0, T0 + timedelta(hours=1)), Batch(0, None, None)))
    assert [p.num_rows for p in pages] == [5, 5, 5, 5, 3]
    ids = [i for p in pages for i in p.column("id").to_pylist()]
    assert ids == list(range(23))


def test_rewriting_a_batch_replaces_its_file_and_leaves_no_temporary_files(source, tmp_path):
    create_items(source, simple_rows(4))
    pipeline = items_pipeline()
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    window = Window(T0, T0 + timedelta(hours=1))
    first = extract_batch(source, pipeline, columns, window, Batch(0, None, None), tmp_path)
    second = extract_batch(source, pipeline, columns, window, Batch(0, None, None), tmp_path)
    assert first.files == second.files
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p.name for p in files] == ["batch-00000.parquet"]
    assert pq.read_table(second.files[0].path).num_rows == 4
