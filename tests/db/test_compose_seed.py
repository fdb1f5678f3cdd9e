"""The docker compose stack's source seed (include/sql/tpch/compose_seed.sql), run as PostgreSQL's initdb
runs it, in a database of its own: the shipped pipelines' tables get rows in every two-hour window of
the last day, and rows their expectations accept."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from warehouse_sync.db.connections import SOURCE_CONN_ID

SQL = Path(__file__).resolve().parents[2] / "include" / "sql" / "tpch"


@pytest.fixture
def seeded(db_uris):
    admin = urlunsplit(urlsplit(db_uris[SOURCE_CONN_ID])._replace(path="/postgres"))
    name = f"ws_test_seed_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(urlunsplit(urlsplit(admin)._replace(path=f"/{name}")), autocommit=True) as conn:
            for script in ("schema.sql", "compose_seed.sql", "indexes.sql"):  # /docker-entrypoint-initdb.d order
                conn.execute((SQL / script).read_text())
            yield conn
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_compose_seed_fills_every_two_hour_window_of_the_last_day_with_rows_the_expectations_accept(seeded):
    orders, windows, bad_orders = seeded.execute(
        "SELECT count(*), count(DISTINCT date_trunc('hour', updated_at) - (extract(hour FROM updated_at)::int % 2) "
        "* interval '1 hour'), count(*) FILTER (WHERE o_orderstatus NOT IN ('O', 'F', 'P') OR o_totalprice < 0) "
        "FROM tpch.orders WHERE updated_at >= now() - interval '25 hours' AND updated_at < now()").fetchone()
    assert orders == 15000 and windows >= 12 and bad_orders == 0
    lines, bad_lines, orphans = seeded.execute(
        "SELECT count(*), count(*) FILTER (WHERE l_quantity NOT BETWEEN 1 AND 50 OR l_discount NOT BETWEEN 0 AND 0.10 "
        "OR l_receiptdate < l_shipdate), count(*) FILTER (WHERE NOT EXISTS (SELECT FROM tpch.orders o "
        "WHERE o.o_orderkey = l_orderkey)) FROM tpch.lineitem").fetchone()
    assert lines > 30000 and bad_lines == 0 and orphans == 0
    assert seeded.execute("SELECT count(*) FROM pg_indexes WHERE indexname IN "
                          "('orders_updated_at_key', 'lineitem_updated_at_key')").fetchone() == (2,)
