"""Hostile sources in CDC mode (issue 25, cases 4 and 8) on a real PostgreSQL with wal_level=logical: a
backlog larger than one read, and a key change that leaves a TOASTed value unchanged."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import psycopg
import pyarrow.parquet as pq
import pytest
from helpers import logical_wal_source, make_pipeline, run_tasks

from warehouse_sync.cdc import slot as slots
from warehouse_sync.model import RunStart


@pytest.fixture
def logical_source(source):
    """The source on a wal_level=logical server (else skipped), without the slots and publications of these tests."""
    with logical_wal_source(source, ("backlog", "toasty")) as conn:
        yield conn


@contextmanager
def logged(name: str) -> Iterator[list[str]]:
    """The messages ``name`` logs (DEBUG and up) in the block: a handler of its own, whatever configures the root."""
    messages: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def cdc_run(source, warehouse, pipeline, root, run_id: str, reconcile: bool = True) -> dict:
    """One manual CDC run now, through the task functions the DAG calls."""
    start = RunStart(None, None, None, datetime.now(timezone.utc), manual=True)
    return run_tasks(source, warehouse, pipeline, start, root, run_id, reconcile)


def _checksum(conn, table: str, live: str = "") -> tuple:
    """Rows and an order-independent checksum of ``(id, note)`` (test-only SQL)."""
    row = conn.execute(f"SELECT count(*), md5(string_agg(id::text || ':' || note, ',' ORDER BY id)) "
                       f"FROM {table} {live}").fetchone()
    conn.commit()
    return row


# Case 4: a backlog larger than one read is read in bounded slices, under a statement timeout one read exceeds.

# Slices of ~1 100 messages (1 000 plus the rest of one 100-row transaction) leave a wide margin under the
# timeout on a busy machine; one read of all 300 000 rows does not fit in it.
BACKLOG_ROWS, BACKLOG_TRANSACTIONS, SLICE = 300_000, 3_000, 1_000
TIMEOUT = "300ms"


def _backlog(source) -> None:
    """BACKLOG_ROWS inserts in BACKLOG_TRANSACTIONS transactions, with the running-transactions record the
    source logs every 15 s of activity between them (written at once here)."""
    per = BACKLOG_ROWS // BACKLOG_TRANSACTIONS
    for k in range(BACKLOG_TRANSACTIONS):
        source.execute("INSERT INTO t_src.backlog (id, note) SELECT i, 'n' || i "
                       "FROM generate_series(%s::int, %s::int) i", (10 + k * per, 9 + (k + 1) * per))
        source.commit()
        source.execute("SELECT pg_log_standby_snapshot()")
        source.commit()
    source.execute("UPDATE t_src.backlog SET note = 'changed' WHERE id % 1000 = 0")
    source.execute("DELETE FROM t_src.backlog WHERE id % 1000 = 1")
    source.commit()


def test_a_backlog_larger_than_one_read_is_read_in_bounded_slices_under_a_statement_timeout_and_applied_once(
        logical_source, warehouse, tmp_path):
    if logical_source.info.server_version < 160000:
        pytest.skip("the backlog's running-transactions records are written with pg_log_standby_snapshot(), "
                    "PostgreSQL 16+ (older servers log them every 15 s of activity)")
    logical_source.execute("CREATE TABLE t_src.backlog (id bigint PRIMARY KEY, note text NOT NULL, "
                           "updated_at timestamptz NOT NULL DEFAULT now())")
    logical_source.execute("INSERT INTO t_src.backlog (id, note) SELECT i, 'first' FROM generate_series(1, 5) i")
    logical_source.commit()
    pipeline = make_pipeline("backlog", ("id",), mode="cdc", cdc={"chunk_changes": SLICE})
    cdc_run(logical_source, warehouse, pipeline, tmp_path, "r1")
    _backlog(logical_source)
    logical_source.execute(f"SET statement_timeout = '{TIMEOUT}'")
    logical_source.commit()
    with pytest.raises(psycopg.errors.QueryCanceled):  # one read of the whole backlog exceeds the timeout
        logical_source.execute("SELECT count(*) FROM pg_logical_slot_peek_binary_changes("
                               "'ws_backlog', NULL, NULL, 'proto_version', '1', 'publication_names', 'ws_backlog')")
    logical_source.rollback()
    with logged("warehouse_sync.cdc.reader") as messages:
        second = cdc_run(logical_source, warehouse, pipeline, tmp_path / "r2", "r2", reconcile=False)
    slices = [int(m.group(1)) for m in (re.search(r"slice \d+ of slot ws_backlog: (\d+) message", r)
                                        for r in messages) if m]
    per_transaction = BACKLOG_ROWS // BACKLOG_TRANSACTIONS + 3  # BEGIN, RELATION, its rows, COMMIT
    assert len(slices) > BACKLOG_ROWS // SLICE // 2  # several slices, each bounded:
    assert max(slices) < SLICE + per_transaction  # at most the bound plus the rest of one transaction
    # the load confirmed the slot in steps through the slices' ends (one advance over it all decodes it all)
    assert len(second["files"][0]["facts"]["checkpoints"]) == len(slices) - 1
    assert second["loaded"]["slot"]["slot_moved"]
    logical_source.execute("RESET statement_timeout")
    logical_source.commit()
    assert _checksum(logical_source, "t_src.backlog") == _checksum(warehouse, "t_dst.backlog",
                                                                   "WHERE _deleted_at IS NULL")
    third = cdc_run(logical_source, warehouse, pipeline, tmp_path / "r3", "r3")
    assert third["loaded"]["staged"] == 0 and third["reconciled"]["drift"] is None  # applied once, nothing left


# Case 8: an update that changes the key and leaves a TOASTed value unchanged.

def _big() -> str:
    """SQL of ~3.2 kB of random hex: stored out of line (the column's storage is EXTERNAL: never compressed)."""
    return "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 100))"


def _toasty(source, identity: str = "DEFAULT") -> None:
    source.execute("CREATE TABLE t_src.toasty (id bigint PRIMARY KEY, big text NOT NULL, note text, "
                   "updated_at timestamptz NOT NULL DEFAULT now())")
    source.execute("ALTER TABLE t_src.toasty ALTER COLUMN big SET STORAGE EXTERNAL")
    source.execute(f"ALTER TABLE t_src.toasty REPLICA IDENTITY {identity}")
    source.execute(f"INSERT INTO t_src.toasty (id, big, note) SELECT i, {_big()}, 'n' FROM generate_series(1, 4) i")
    source.commit()


def _toasty_rows(source, warehouse) -> tuple[list, list]:
    src = source.execute("SELECT id, big, note FROM t_src.toasty ORDER BY id").fetchall()
    dst = warehouse.execute("SELECT id, big, note FROM t_dst.toasty WHERE _deleted_at IS NULL ORDER BY id").fetchall()
    source.commit()
    warehouse.commit()
    return src, dst


def test_a_key_changing_update_keeps_its_unchanged_toasted_value(logical_source, warehouse, tmp_path):
    _toasty(logical_source)
    pipeline = make_pipeline("toasty", ("id",), mode="cdc")
    cdc_run(logical_source, warehouse, pipeline, tmp_path, "r1")
    logical_source.execute("UPDATE t_src.toasty SET id = 101 WHERE id = 1")  # the key alone
    logical_source.execute("UPDATE t_src.toasty SET id = 102, note = 'moved' WHERE id = 2")  # a chain in one run
    logical_source.commit()
    logical_source.execute("UPDATE t_src.toasty SET id = 202 WHERE id = 102")
    logical_source.execute(f"UPDATE t_src.toasty SET big = {_big()} WHERE id = 3")  # a new value, then the key
    logical_source.commit()
    logical_source.execute("UPDATE t_src.toasty SET id = 103 WHERE id = 3")
    logical_source.commit()
    second = cdc_run(logical_source, warehouse, pipeline, tmp_path / "r2", "r2")
    staged = [r for f in second["files"][0]["files"] for r in pq.read_table(f["path"]).to_pylist()]
    assert [(r["_op"], r["id"], r["_unchanged"]) for r in staged if r["_op"] == "K"] == [
        ("K", "101", '{"big"}'), ("K", "102", '{"big"}'), ("K", "202", '{"big"}'), ("K", "103", '{"big"}')]
    src, dst = _toasty_rows(logical_source, warehouse)
    assert [r[0] for r in dst] == [4, 101, 103, 202] and all(len(r[1]) == 3200 for r in dst)
    assert dst == src
    reconciled = second["reconciled"]
    assert reconciled["drift"] is None  # nothing to repair: the first comparison matched
    assert all(c["source_checksum"] == c["warehouse_checksum"] for c in reconciled["comparisons"])


def test_a_key_changing_update_replayed_after_a_kill_before_the_confirm_stays_whole(logical_source, warehouse,
                                                                                    tmp_path, monkeypatch):
    _toasty(logical_source, "FULL")  # the old row logged whole; deletes hard: the old key's row is gone on replay
    pipeline = make_pipeline("toasty", ("id",), mode="cdc", delete_mode="hard")
    cdc_run(logical_source, warehouse, pipeline, tmp_path, "r1")
    logical_source.execute("UPDATE t_src.toasty SET id = 101 WHERE id = 1")
    logical_source.commit()

    def killed(*args, **kwargs):
        raise RuntimeError("worker killed before the slot confirm")

    monkeypatch.setattr(slots, "confirm", killed)
    with pytest.raises(RuntimeError, match="killed"):
        cdc_run(logical_source, warehouse, pipeline, tmp_path / "r2", "r2", reconcile=False)
    monkeypatch.undo()
    src, dst = _toasty_rows(logical_source, warehouse)
    assert dst == src  # the warehouse committed
    rerun = cdc_run(logical_source, warehouse, pipeline, tmp_path / "r3", "r3")
    assert rerun["loaded"]["staged"] == 2 and rerun["loaded"]["merged"] == 0  # the replay changes nothing
    src, dst = _toasty_rows(logical_source, warehouse)
    assert dst == src and rerun["reconciled"]["drift"] is None
