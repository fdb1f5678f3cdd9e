"""Tests, demo and benchmarks never touch what they did not create: pointed at your servers, they make
databases of their own there (marked with a comment), leave the databases you named as they were,
and refuse a database of their name that they did not create."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from devkit.embedded import ENV_VARS, MARK, OPT_IN, own_database
from warehouse_sync.db.connections import SOURCE_CONN_ID

REPO = Path(__file__).resolve().parents[2]
# Two quick tests whose fixtures drop t_src, t_dst and warehouse_sync in the databases they are given.
PROBES = ["tests/db/test_plan.py::test_batches_have_at_most_batch_size_rows_and_cover_the_window_exactly_once",
          "tests/db/test_load.py::test_first_load_creates_target_with_same_columns_and_metadata"]


def _on(uri: str, database: str) -> str:
    return urlunsplit(urlsplit(uri)._replace(path=f"/{database}"))


@pytest.fixture
def foreign(db_uris):
    """A database that is somebody else's: it has a warehouse_sync schema and a t_src table with a row."""
    admin = _on(db_uris[SOURCE_CONN_ID], "postgres")
    name = f"ws_foreign_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    uri = _on(admin, name)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA warehouse_sync; CREATE TABLE warehouse_sync.audit (note text);"
                     "INSERT INTO warehouse_sync.audit VALUES ('theirs');"
                     "CREATE SCHEMA t_src; CREATE TABLE t_src.items (id int); INSERT INTO t_src.items VALUES (1)")
    yield admin, name, uri
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _theirs(uri: str) -> list[tuple]:
    with psycopg.connect(uri) as conn:
        return conn.execute("SELECT (SELECT note FROM warehouse_sync.audit), (SELECT id FROM t_src.items)").fetchall()


def test_tests_pointed_at_your_database_run_in_their_own_and_leave_yours_untouched(foreign):
    admin, name, uri = foreign
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / d) for d in ("plugins", "tools", "tests")),
           ENV_VARS[SOURCE_CONN_ID]: uri, ENV_VARS["warehouse_postgres"]: uri}
    env.pop(OPT_IN, None)
    ran = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PROBES], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "2 passed" in ran.stdout, ran.stdout[-2000:]
    assert _theirs(uri) == [("theirs", 1)], "the tests changed the database they were pointed at"
    with psycopg.connect(admin) as conn:
        marks = dict(conn.execute("SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                                  "WHERE datname IN ('ws_test_source', 'ws_test_warehouse')").fetchall())
    assert marks == {"ws_test_source": MARK, "ws_test_warehouse": MARK}


def test_a_database_of_their_name_that_they_did_not_create_is_refused_with_the_fix(foreign):
    admin, name, uri = foreign
    with pytest.raises(RuntimeError, match=f"{name} .*did not create.*{OPT_IN}=1"):
        own_database(admin, name, "tests")
    assert _theirs(uri) == [("theirs", 1)]


def test_an_own_database_is_created_once_marked_and_reused(db_uris):
    admin = _on(db_uris[SOURCE_CONN_ID], "postgres")
    name = f"ws_own_{uuid.uuid4().hex[:8]}"
    try:
        first = own_database(admin, name, "demo")
        assert urlsplit(first).path == f"/{name}" and own_database(admin, name, "demo") == first
        with psycopg.connect(first) as conn:
            (mark,) = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                   "WHERE datname = current_database()").fetchone()
        assert mark == MARK
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_demo_on_your_servers_seeds_its_own_databases(foreign, monkeypatch):
    from devkit import demo

    admin, name, uri = foreign
    for var in ENV_VARS.values():
        monkeypatch.setenv(var, uri)
    monkeypatch.delenv(OPT_IN, raising=False)
    env = demo.demo_connections()
    assert {urlsplit(u).path for u in env.values()} == {"/ws_demo_source", "/ws_demo_warehouse"}, env
    assert _theirs(uri) == [("theirs", 1)]
    with psycopg.connect(admin, autocommit=True) as conn:
        for db in ("ws_demo_source", "ws_demo_warehouse"):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
