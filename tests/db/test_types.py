"""Every common PostgreSQL type, end to end, in cursor mode and in CDC mode (issues 25 and 26).

One table holds each type with NULLs and its edge values, including values Arrow's types cannot hold
(numeric NaN and ±Infinity, date and timestamp ±infinity, BC dates, year 10000, time 24:00:00), an
enum, a domain and arrays of them. Each run must load every value exactly (the rows' text forms are
equal on both sides), source and warehouse checksums must be equal with nothing to repair, and a
second run after the edge values moved between rows must still match.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import T0, logical_wal_source, make_pipeline, run_tasks, sync_window

from warehouse_sync.db.catalog import describe_source
from warehouse_sync.model import Batch, RunStart, Window
from warehouse_sync.reconcile.compare import compare
from warehouse_sync.sync.extract import ValueNotHeld, read_pages

TYPES_DDL = """
CREATE TYPE t_src.mood AS ENUM ('sad', 'ok', 'happy, "very"');
CREATE DOMAIN t_src.posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN t_src.price AS numeric(12,3);
CREATE TABLE t_src.every_type (
    id          bigint        PRIMARY KEY,
    i2          smallint,
    i4          integer,
    i8          bigint,
    num         numeric,
    num_p       numeric(12,3),
    num_big     numeric(60,20),
    r4          real,
    r8          double precision,
    txt         text,
    vc          varchar(20),
    ch          char(5),
    flag        boolean,
    raw         bytea,
    uid         uuid,
    js          json,
    jsb         jsonb,
    d           date,
    ts          timestamp,
    tstz        timestamptz,
    tm          time,
    tmtz        timetz,
    iv          interval,
    mood        t_src.mood,
    pos         t_src.posint,
    price       t_src.price,
    ints        integer[],
    texts       text[],
    moods       t_src.mood[],
    ip          inet,
    net         cidr,
    updated_at  timestamptz   NOT NULL
);
CREATE INDEX ON t_src.every_type (updated_at, id);
"""
VALUE_COLUMNS = ("i2, i4, i8, num, num_p, num_big, r4, r8, txt, vc, ch, flag, raw, uid, js, jsb, d, ts, tstz, tm, "
                 "tmtz, iv, mood, pos, price, ints, texts, moods, ip, net")
# One row of plain values, one of NULLs, then the edge values: each a literal PostgreSQL reads.
ROWS = [
    "12, 123456, 1234567890123, 3.14159, 12.5, 12345678901234567890123456789012345678.12345678901234567890,"
    " 1.5, 2.25, 'plain', 'varchar', 'ab', true, '\\x00ff0a'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',"
    " '{\"a\": [1, 2],  \"b\": null}', '{\"b\": 1, \"a\": \"x\"}', '2026-11-20', '2026-11-20 12:34:56.789012',"
    " '2026-11-20 12:34:56.5+02', '13:14:15.123456', '13:14:15+05:30', '1 year 2 mons 3 days 04:05:06.7', 'ok', 5,"
    " 7.125, '{1,NULL,3}', '{\"a,b\",\"\",NULL,\"q\\\"uote\",\"line\nbreak\"}', '{sad,\"happy, \\\"very\\\"\"}',"
    " '192.168.0.1/24', '10.0.0.0/8'",
    ", ".join(["NULL"] * 30),
    "-32768, -2147483648, -9223372036854775808, 'NaN', 'NaN', -0.00000000000000000001, 'NaN', 'NaN', '', '', '',"
    " false, ''::bytea, '00000000-0000-0000-0000-000000000000', 'null', '[]', 'infinity', 'infinity', 'infinity',"
    " '24:00:00', '24:00:00+00', '-178000000 years', 'happy, \"very\"', 2147483647, 'NaN', '{}', '{}', '{}',"
    " '::1', '::/0'",
    "32767, 2147483647, 9223372036854775807, 'Infinity', 99999999.999, 1e39, 'Infinity', 'Infinity', 'x', 'y',"
    " 'z', true, '\\x'::bytea, 'ffffffff-ffff-ffff-ffff-ffffffffffff', '\"s\"', '{\"k\": {\"n\": 1e400}}',"
    " '-infinity', '-infinity', '-infinity', '00:00:00', '00:00:00-15:59', '178000000 years', 'sad', 1, -99999999.999,"
    " '{{1,2},{3,4}}', '{\"\\\\\\\\\"}', '{ok,NULL}', '255.255.255.255', '0.0.0.0/0'",
    "0, 0, 0, '-Infinity', 0.001, 0, '-Infinity', '-Infinity', 'ü€𝄞', 'ü', 'ü', NULL, '\\x5c'::bytea,"
    " 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{}', '{}', '0044-03-15 BC', '10000-01-01 00:00:00',"
    " '4713-01-01 00:00:00+00 BC', '23:59:59.999999', '23:59:59.999999+15:59', '0', NULL, NULL, 0.000,"
    " '[0:1]={7,8}', '{NULL}', '{NULL}', '2001:db8::1', '2001:db8::/32'",
    "1, 1, 1, 0.000000000000000000000000000000000000001, 0, 0, 1.17549435e-38, 4.9e-324, ' trailing ',"
    " ' ', 'a b  ', true, '\\x22'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', '  {\"keep\": \"spacing\"}  ',"
    " '{\"a\": \"\\\\u00e9 kept\"}', '294276-12-31', '294276-12-31 23:59:59.999999',"
    " '294276-12-31 23:59:59.999999+00', '00:00:00.000001', '00:00:00+00', '-1 days +00:00:01', 'ok', 3, 1.5,"
    " '{-1}', '{\" \"}', '{ok,ok}', '10.1.2.3', '10.1.2.0/24'",
]


def _create(source, rows: list[str]) -> None:
    source.execute(TYPES_DDL)
    for i, values in enumerate(rows, start=1):
        source.execute(f"INSERT INTO t_src.every_type (id, {VALUE_COLUMNS}, updated_at) "  # test-only SQL
                       f"VALUES ({i}, {values}, %s)", (T0 + timedelta(minutes=i),))
    source.commit()


def _move_edge_values(source, at: datetime) -> None:
    """Updates the edge values: each row takes the next row's values (the last takes the first's)."""
    source.execute(f"UPDATE t_src.every_type AS t SET ({VALUE_COLUMNS}, updated_at) = "  # test-only SQL
                   f"(SELECT {VALUE_COLUMNS}, %s FROM t_src.every_type AS n "
                   f"WHERE n.id = t.id %% (SELECT max(id) FROM t_src.every_type) + 1)", (at,))
    source.commit()


def _texts(conn, table: str, live: str = "") -> list[tuple[int, str]]:
    """Each row's values as PostgreSQL's text form of the row, by id."""
    rows = conn.execute(f"SELECT id, ROW({VALUE_COLUMNS})::text FROM {table} {live} ORDER BY id").fetchall()
    conn.commit()
    return rows


def _assert_equal(source, warehouse, pipeline) -> None:
    assert _texts(warehouse, "t_dst.every_type", "WHERE _deleted_at IS NULL") == _texts(source, "t_src.every_type")
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    comparisons = compare(source, warehouse, pipeline, columns, Window(None, T0 + timedelta(days=400)))
    assert [c.source.rows for c in comparisons] == [len(ROWS)]
    assert all(c.source == c.warehouse for c in comparisons), comparisons


def _no_drift(result: dict) -> None:
    reconciled = result["reconciled"]
    assert reconciled["drift"] is None and all(c["matches"] for c in reconciled["comparisons"]), reconciled


def test_cursor_mode_loads_every_type_and_edge_value_exactly_and_checksums_match(source, warehouse, tmp_path):
    _create(source, ROWS)
    pipeline = make_pipeline("every_type", ("id",), batch_size=3, page_size=2)
    first = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, "r1",
                        full_snapshot=True)  # the snapshot path: build table, then rename
    assert first["loaded"]["staged"] == len(ROWS)
    assert _staged_types(first, "d") == {pa.string()}  # every batch holds an edge value: staged as text
    _no_drift(first)
    _assert_equal(source, warehouse, pipeline)
    _move_edge_values(source, T0 + timedelta(hours=1, minutes=5))
    second = sync_window(source, warehouse, pipeline, T0 + timedelta(hours=1), T0 + timedelta(hours=2), tmp_path,
                         "r2")  # the incremental path: staging table, version-guarded merge
    assert second["loaded"]["merged"] == len(ROWS)
    _no_drift(second)
    _assert_equal(source, warehouse, pipeline)
    # Drift in every column of the edge rows: located by key and repaired from the source.
    warehouse.execute(f"UPDATE t_dst.every_type AS t SET ({VALUE_COLUMNS}) = "  # test-only SQL
                      f"(SELECT {VALUE_COLUMNS} FROM t_dst.every_type WHERE id = 1) WHERE t.id IN (3, 4, 5)")
    warehouse.commit()
    checked = pipeline.model_copy(update={"per_run_table_check": "full", "repair_max_fraction": 1.0})
    third = sync_window(source, warehouse, checked, T0 + timedelta(hours=2), T0 + timedelta(hours=3), tmp_path, "r3")
    assert third["reconciled"]["drift"]["changed"] == 3 and third["reconciled"]["drift"]["repaired"] == 3
    _assert_equal(source, warehouse, pipeline)


def _staged_types(result: dict, column: str) -> set[pa.DataType]:
    """The Arrow types ``column`` has in the run's staged files."""
    return {pq.read_schema(f["path"]).field(column).type for extract in result["files"] for f in extract["files"]}


BINARY_DDL = """
CREATE TABLE t_src.binary_ready (
    id          bigint        PRIMARY KEY,
    amount      numeric(12,2),
    born        date,
    seen_at     timestamp,
    updated_at  timestamptz   NOT NULL
);
CREATE INDEX ON t_src.binary_ready (updated_at, id);
"""


def test_batches_with_and_without_edge_values_load_together_binary_and_as_text(source, warehouse, tmp_path):
    source.execute(BINARY_DDL)
    source.execute("INSERT INTO t_src.binary_ready SELECT i, i * 1.25, DATE '2026-01-01' + i, "
                   "TIMESTAMP '2026-01-01' + i * interval '1 hour', %s + i * interval '1 second' "
                   "FROM generate_series(1, 9) i", (T0,))
    source.execute("UPDATE t_src.binary_ready SET amount = 'NaN', born = '-infinity', seen_at = '0001-01-01 BC' "
                   "WHERE id = 5")
    source.commit()
    pipeline = make_pipeline("binary_ready", ("id",), batch_size=3, page_size=2)
    columns = describe_source(source, pipeline.source, pipeline.primary_key, pipeline.cursor)
    with pytest.raises(ValueNotHeld, match=r"column 'amount' \(decimal128\(12, 2\)\) holds a value") as caught:
        list(read_pages(source, pipeline, columns, Window(T0, T0 + timedelta(hours=1)), Batch(0, None, None)))
    assert "NaN" not in str(caught.value)  # the column is named, never the value
    source.rollback()
    first = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, "r1")
    assert _staged_types(first, "born") == {pa.date32(), pa.string()}  # batch 1 as text, the others exact
    _no_drift(first)
    source.execute("UPDATE t_src.binary_ready SET amount = 'NaN', born = 'infinity', seen_at = '10000-01-01', "
                   "updated_at = %s WHERE id IN (1, 9)", (T0 + timedelta(hours=1, minutes=1),))
    source.execute("UPDATE t_src.binary_ready SET amount = 5, born = '2026-05-05', updated_at = %s WHERE id = 5",
                   (T0 + timedelta(hours=1, minutes=2),))
    source.commit()
    second = sync_window(source, warehouse, pipeline, T0 + timedelta(hours=1), T0 + timedelta(hours=2), tmp_path,
                         "r2")
    assert second["loaded"]["merged"] == 3
    _no_drift(second)
    texts = "SELECT id, ROW(amount, born, seen_at, updated_at)::text FROM {} ORDER BY id"
    assert warehouse.execute(texts.format("t_dst.binary_ready")).fetchall() == \
        source.execute(texts.format("t_src.binary_ready")).fetchall()
    warehouse.commit()
    source.commit()


def test_the_warehouse_holds_enums_as_text_and_domains_as_their_base_type(source, warehouse, tmp_path):
    _create(source, ROWS[:2])
    pipeline = make_pipeline("every_type", ("id",))
    sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, "r1")
    types = dict(warehouse.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = 't_dst.every_type'::regclass "
        "AND a.attname IN ('mood', 'moods', 'pos', 'price', 'num_p')"
    ).fetchall())
    warehouse.commit()
    assert types == {"mood": "text", "moods": "text[]", "pos": "integer", "price": "numeric(12,3)",
                     "num_p": "numeric(12,3)"}


def test_a_type_the_warehouse_lacks_is_stored_as_its_text_form_and_checksums_match(source, warehouse, tmp_path):
    # A composite type named like PostGIS's stands for any type the warehouse lacks (the embedded server
    # has no PostGIS): the target column is text (text[] for its arrays) holding the source's text form.
    source.execute("CREATE TYPE t_src.geometry AS (x double precision, y double precision);"
                   "CREATE TABLE t_src.shapes (id bigint PRIMARY KEY, geom t_src.geometry, path t_src.geometry[],"
                   " span tstzrange, updated_at timestamptz NOT NULL)")
    source.execute("INSERT INTO t_src.shapes VALUES (1, '(1.5,-2)', '{\"(0,0)\",\"(1,NaN)\"}', "
                   "'[2026-01-01,infinity)', %(t)s), (2, NULL, '{}', 'empty', %(t)s), (3, '(,)', NULL, NULL, %(t)s)",
                   {"t": T0})
    source.commit()
    pipeline = make_pipeline("shapes", ("id",))
    result = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, "r1")
    _no_drift(result)
    types = warehouse.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                              "WHERE a.attrelid = 't_dst.shapes'::regclass AND a.attname IN ('geom', 'path', 'span')")
    assert dict(types.fetchall()) == {"geom": "text", "path": "text[]", "span": "tstzrange"}
    texts = "SELECT id, geom::text, path::text, span::text FROM {} ORDER BY id"
    assert warehouse.execute(texts.format("t_dst.shapes")).fetchall() == \
        source.execute(texts.format("t_src.shapes")).fetchall()
    warehouse.commit()
    source.commit()


@pytest.fixture
def cdc_types_source(source):
    """The source with the every-type table, on a server with wal_level=logical (else skipped)."""
    with logical_wal_source(source, ("every_type",)) as conn:
        yield conn


def _cdc_run(source, warehouse, pipeline, root, run_id: str) -> dict:
    start = RunStart(None, None, None, datetime.now(timezone.utc), manual=True)
    return run_tasks(source, warehouse, pipeline, start, root, run_id)


def test_cdc_mode_loads_every_type_and_edge_value_exactly_and_checksums_match(cdc_types_source, warehouse,
                                                                               tmp_path):
    source = cdc_types_source
    _create(source, ROWS)
    pipeline = make_pipeline("every_type", ("id",), mode="cdc", cdc={"chunk_changes": 4})
    first = _cdc_run(source, warehouse, pipeline, tmp_path, "r1")  # the snapshot, in the slot's exported snapshot
    assert first["loaded"]["merged"] == len(ROWS)
    _no_drift(first)
    _assert_equal(source, warehouse, pipeline)
    _move_edge_values(source, T0 + timedelta(hours=1, minutes=5))
    second = _cdc_run(source, warehouse, pipeline, tmp_path, "r2")  # the changes, decoded from pgoutput
    assert second["loaded"]["staged"] == len(ROWS)
    _no_drift(second)
    _assert_equal(source, warehouse, pipeline)
