"""Hostile sources (issue 25) on a real PostgreSQL: table shapes and sessions production sources have
that must neither break the source, stop the sync for good, nor lose rows."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import psycopg
import pytest
from helpers import make_pipeline, run_tasks

from warehouse_sync.cdc import slot as slots
from warehouse_sync.model import RunStart

OURS = ("ws_rid",)


@pytest.fixture
def logical_source(source):
    """The source on a wal_level=logical server (else skipped), without the slots and publications of these tests."""
    (level,) = source.execute("SHOW wal_level").fetchone()
    source.commit()
    if level != "logical":
        pytest.skip("this PostgreSQL runs with wal_level != logical")
    _drop_ours(source)
    yield source
    source.rollback()
    _drop_ours(source)


def _drop_ours(conn) -> None:
    for name in OURS:
        conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                     (name,))
        conn.execute(psycopg.sql.SQL("DROP PUBLICATION IF EXISTS {}").format(psycopg.sql.Identifier(name)))
    conn.commit()


def cdc_run(source, warehouse, pipeline, root, run_id: str, full_snapshot: bool = False) -> dict:
    """One manual CDC run now, through the task functions the DAG calls."""
    start = RunStart(None, None, None, datetime.now(timezone.utc), manual=True, full_snapshot=full_snapshot)
    return run_tasks(source, warehouse, pipeline, start, root, run_id)


# Case 1: CDC on a table whose replica identity does not carry the key.

def _rid_table(source, ddl: str) -> None:
    source.execute(ddl)
    source.execute("INSERT INTO t_src.rid (id, code, note, updated_at) "
                   "SELECT i, 'c' || i, 'n' || i, now() FROM generate_series(1, 5) i")
    source.commit()


def _application_writes(source) -> None:
    """What the application does to the table: an UPDATE and a DELETE (raises if PostgreSQL rejects them)."""
    source.execute("UPDATE t_src.rid SET note = 'app' WHERE id = 1")
    source.execute("DELETE FROM t_src.rid WHERE id = 2")
    source.commit()


def test_a_table_without_primary_key_is_refused_with_the_fix_and_application_updates_and_deletes_still_work(
        logical_source, warehouse, tmp_path):
    _rid_table(logical_source, "CREATE TABLE t_src.rid (id bigint NOT NULL, code text, note text, "
                               "updated_at timestamptz NOT NULL, CONSTRAINT rid_id_key UNIQUE (id))")
    pipeline = make_pipeline("rid", ("id",), mode="cdc")
    with pytest.raises(slots.ReplicaIdentityUnusable,
                       match=r"no primary key.*reject every UPDATE and DELETE.*not added to publication ws_rid.*"
                             + re.escape('ALTER TABLE "t_src"."rid" REPLICA IDENTITY USING INDEX "rid_id_key"')):
        cdc_run(logical_source, warehouse, pipeline, tmp_path, "r1")
    with pytest.raises(slots.ReplicaIdentityUnusable):  # the extract's own check, before it publishes anything
        slots.ensure_publication(logical_source, pipeline)
    _application_writes(logical_source)  # the table was not published: the application is unharmed
    logical_source.execute("ALTER TABLE t_src.rid REPLICA IDENTITY USING INDEX rid_id_key")  # the fix it gave
    logical_source.commit()
    cdc_run(logical_source, warehouse, pipeline, tmp_path, "r2")
    logical_source.execute("DELETE FROM t_src.rid WHERE id = 3")
    logical_source.commit()
    later = cdc_run(logical_source, warehouse, pipeline, tmp_path, "r3")
    assert later["loaded"]["staged"] == 1  # the delete arrived with its key
    deleted = warehouse.execute("SELECT id FROM t_dst.rid WHERE _deleted_at IS NOT NULL").fetchall()
    warehouse.commit()
    assert deleted == [(3,)]


def test_a_key_that_differs_from_the_replica_identity_is_refused_with_the_fix(logical_source, warehouse, tmp_path):
    _rid_table(logical_source, "CREATE TABLE t_src.rid (id bigint PRIMARY KEY, code text, note text, "
                               "updated_at timestamptz NOT NULL, CONSTRAINT rid_code_key UNIQUE (code))")
    pipeline = make_pipeline("rid", ("code",), mode="cdc")
    # code may be NULL, so no unique index can serve as the identity: the fix is FULL.
    with pytest.raises(slots.ReplicaIdentityUnusable,
                       match=r"logs only \['id'\].*without the pipeline's key \['code'\].*"
                             + re.escape('ALTER TABLE "t_src"."rid" REPLICA IDENTITY FULL')):
        cdc_run(logical_source, warehouse, pipeline, tmp_path, "r1")
    _application_writes(logical_source)
    logical_source.execute("ALTER TABLE t_src.rid REPLICA IDENTITY FULL")
    logical_source.commit()
    cdc_run(logical_source, warehouse, pipeline, tmp_path, "r2")  # usable now
