"""Schema contracts on a real PostgreSQL: each change kind at the source under each ``schema_changes``
policy (evolve, freeze, discard), what the warehouse holds after the run, the reconcile, the
``schema_history`` rows, the data-quality page and the ``on_schema_change`` calls (the DAG's alert).

The change kinds × policies (pure decisions, every combination): ``unit/test_schema_decision.py``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from helpers import T0, create_lines, lines_pipeline, make_pipeline, warehouse_rows

from warehouse_sync import tasks
from warehouse_sync.inline import run_window
from warehouse_sync.model import RunStart
from warehouse_sync.run import Run
from warehouse_sync.target.schema import SchemaChanged

HOUR = timedelta(hours=1)


def run(source, warehouse, pipeline, start, end, root, run_id="test", calls=None, reconcile=True):
    """plan -> extract -> load (with ``on_schema_change`` appending to ``calls``) -> reconcile, as XCom values."""
    result = run_window(Run(pipeline, source, warehouse, run_id), RunStart.scheduled(start, end, False), root,
                        reconcile=reconcile, on_schema_change=calls.append if calls is not None else None)
    return {"planned": result.plan.to_dict(), "loaded": result.loaded.to_dict(),
            "reconciled": result.reconciled.to_dict() if result.reconciled else None}


def column_type(conn, table: str, column: str) -> tuple[str, bool] | None:
    """``(format_type, not null)`` of a column, or ``None`` when the table has no such column."""
    row = conn.execute("SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
                       "WHERE attrelid = %s::regclass AND attname = %s AND NOT attisdropped",
                       (table, column)).fetchone()
    conn.commit()
    return row


def history(warehouse, pipeline: str) -> list[tuple]:
    rows = warehouse.execute("SELECT column_name, change, old_type, new_type, policy, outcome, run_id "
                             "FROM warehouse_sync.schema_history WHERE pipeline = %s ORDER BY id",
                             (pipeline,)).fetchall()
    warehouse.commit()
    return rows


def in_sync(result) -> bool:
    comparisons = result["reconciled"]["comparisons"]
    return bool(comparisons) and all(c["matches"] and not c["deferred"] for c in comparisons)


def add_currency(source) -> None:
    """The common OLTP change: a new nullable column (existing rows get its default, their cursor
    unchanged: only a back-fill can bring them); order 1 then changes in the next window, order 2
    after it (in flight for that window)."""
    source.execute("ALTER TABLE t_src.lines ADD COLUMN currency char(3) DEFAULT 'EUR'")
    source.execute("UPDATE t_src.lines SET currency = 'USD', qty = qty + 1, updated_at = %s WHERE order_id = 1",
                   (T0 + 90 * timedelta(minutes=1),))
    source.execute("UPDATE t_src.lines SET currency = 'GBP', updated_at = %s WHERE order_id = 2", (T0 + 3 * HOUR,))
    source.commit()


LINE_COLUMNS = "order_id, line, qty, note, updated_at"


def test_evolve_adds_a_new_column_back_fills_existing_rows_and_reconciles_it(source, warehouse, tmp_path):
    create_lines(source, orders=20)
    pipeline = lines_pipeline()
    assert pipeline.schema_changes == "evolve"  # the default
    run(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path, run_id="before")
    add_currency(source)
    calls: list[dict] = []

    result = run(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path, run_id="adds", calls=calls)

    assert column_type(warehouse, "t_dst.lines", "currency") == ("character(3)", False)
    assert result["loaded"]["merged"] == 4 and result["loaded"]["backfilled"] == 80 - 8
    currencies = dict(((o, n), c) for o, n, c in warehouse_rows(warehouse, "t_dst.lines", "order_id, line, currency"))
    assert {c for (o, _), c in currencies.items() if o == 1} == {"USD"}  # merged by this load
    assert {c for (o, _), c in currencies.items() if o == 2} == {None}  # newer at the source: in flight, not guessed
    assert {c for (o, _), c in currencies.items() if o > 2} == {"EUR"}  # back-filled
    assert in_sync(result) and result["reconciled"]["drift"] is None
    assert history(warehouse, "lines") == [("currency", "added", None, "character(3)", "evolve", "applied", "adds")]
    (call,) = calls
    assert call["table"] == "t_dst.lines" and call["policy"] == "evolve"
    assert [(c["column"], c["change"], c["outcome"]) for c in call["changes"]] == [("currency", "added", "applied")]
    detail = warehouse.execute(
        "SELECT detail FROM warehouse_sync.audit WHERE step = 'load' AND run_id = 'adds'").fetchone()[0]
    assert detail["backfilled"] == 72 and detail["schema_changes"][0]["column"] == "currency"

    later = run(source, warehouse, pipeline, T0 + 2 * HOUR, T0 + 4 * HOUR, tmp_path, run_id="after", calls=calls)
    assert in_sync(later) and len(calls) == 1 and len(history(warehouse, "lines")) == 1  # nothing new to report
    assert warehouse_rows(warehouse, "t_dst.lines", LINE_COLUMNS + ", currency") == \
        source.execute(f"SELECT {LINE_COLUMNS}, currency FROM t_src.lines ORDER BY 1, 2").fetchall()

    # The checksum covers the new column: a wrong value in it alone is drift, located by column and repaired.
    warehouse.execute("UPDATE t_dst.lines SET currency = 'XXX' WHERE order_id = 3 AND line = 1")
    warehouse.commit()
    again = tasks.reconcile_table(Run(pipeline, source, warehouse, "tampered")).to_dict()  # the daily reconcile
    assert again["drift"]["changed"] == 1 and again["drift"]["sample_changed"] == {"[3, 1]": ["currency"]}
    assert warehouse.execute("SELECT currency FROM t_dst.lines WHERE order_id = 3 AND line = 1").fetchone() == ("EUR",)


def create(source, ddl: str) -> None:
    """Runs a CREATE TABLE; INSERT pair (the INSERT binds ``t0``)."""
    create_table, insert = ddl.strip().split(";\n", 1)
    source.execute(create_table)
    source.execute(insert.rstrip().rstrip(";"), {"t0": T0})
    source.commit()


def test_the_data_quality_page_lists_the_schema_changes(source, warehouse, tmp_path):
    from warehouse_sync.quality.page import collect, render

    create_lines(source, orders=5)
    pipeline = lines_pipeline()
    run(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path)
    add_currency(source)
    run(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path, run_id="adds")
    (view,) = collect(warehouse, (pipeline,))
    assert [(s["column"], s["change"], s["types"], s["policy"], s["outcome"]) for s in view.schema_changes] == [
        ("currency", "added", "character(3)", "evolve", "applied")]
    html = render([view])
    assert "Source schema changes" in html and "currency" in html and "back-filled" in html


def test_freeze_fails_on_a_new_column_naming_it_and_commits_nothing(source, warehouse, tmp_path):
    create_lines(source, orders=5)
    pipeline = lines_pipeline(schema_changes="freeze")
    run(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path)
    before = warehouse_rows(warehouse, "t_dst.lines", LINE_COLUMNS)
    add_currency(source)
    calls: list[dict] = []
    with pytest.raises(SchemaChanged) as info:
        run(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path, run_id="frozen", calls=calls)
    message = str(info.value)
    assert "t_dst.lines" in message and "'currency' (character(3)) is new in the source" in message
    assert "'freeze'" in message and "ADD COLUMN" in message and "full_snapshot" in message
    warehouse.rollback()
    assert column_type(warehouse, "t_dst.lines", "currency") is None
    assert warehouse_rows(warehouse, "t_dst.lines", LINE_COLUMNS) == before
    assert history(warehouse, "lines") == [("currency", "added", None, "character(3)", "freeze", "rejected", "frozen")]
    assert [c["outcome"] for c in calls[0]["changes"]] == ["rejected"]
    assert SchemaChanged in tasks.DETERMINISTIC_ERRORS  # fails the task without retries
    status = warehouse.execute(
        "SELECT status FROM warehouse_sync.audit WHERE step = 'load' AND run_id = 'frozen'").fetchone()
    assert status == ("failed",)


def test_discard_ignores_a_new_column_and_reconciles_on_the_shared_columns(source, warehouse, tmp_path):
    create_lines(source, orders=20)
    pipeline = lines_pipeline(schema_changes="discard")
    run(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path)
    add_currency(source)
    calls: list[dict] = []
    result = run(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path, run_id="ignores", calls=calls)
    assert column_type(warehouse, "t_dst.lines", "currency") is None
    assert result["loaded"]["merged"] == 4 and result["loaded"]["backfilled"] == 0
    assert in_sync(result) and result["reconciled"]["drift"] is None
    assert history(warehouse, "lines") == [("currency", "added", None, "character(3)", "discard", "ignored", "ignores")]
    assert [c["outcome"] for c in calls[0]["changes"]] == ["ignored"]

    later = run(source, warehouse, pipeline, T0 + 2 * HOUR, T0 + 4 * HOUR, tmp_path, run_id="later", calls=calls)
    assert in_sync(later) and len(calls) == 1 and len(history(warehouse, "lines")) == 1  # recorded once
    assert warehouse_rows(warehouse, "t_dst.lines", LINE_COLUMNS) == \
        source.execute(f"SELECT {LINE_COLUMNS} FROM t_src.lines ORDER BY 1, 2").fetchall()
    # Repair writes the shared columns only.
    warehouse.execute("UPDATE t_dst.lines SET note = 'tampered' WHERE order_id = 5 AND line = 2")
    warehouse.commit()
    again = tasks.reconcile_table(Run(pipeline, source, warehouse, "tampered")).to_dict()  # the daily reconcile
    assert again["drift"]["changed"] == 1 and in_sync({"reconciled": again})


WIDE_DDL = """
CREATE TABLE t_src.wide (id bigint PRIMARY KEY, code varchar(10), n integer, amount numeric(8,2),
                         updated_at timestamptz NOT NULL);
INSERT INTO t_src.wide SELECT i, 'c' || i, i * 1000, i + 0.25, %(t0)s + i * interval '1 second'
FROM generate_series(1, 30) AS i;
"""


def test_evolve_widens_varchar_integer_and_numeric_and_keeps_the_data(source, warehouse, tmp_path):
    create(source, WIDE_DDL)
    pipeline = make_pipeline("wide", ("id",))
    run(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path)
    source.execute("ALTER TABLE t_src.wide ALTER COLUMN code TYPE varchar(50), ALTER COLUMN n TYPE bigint, "
                   "ALTER COLUMN amount TYPE numeric(12,2)")
    source.execute("UPDATE t_src.wide SET code = repeat('x', 40), n = 5000000000, amount = 1234567.89, "
                   "updated_at = %s WHERE id = 1", (T0 + 90 * timedelta(minutes=1),))
    source.commit()
    calls: list[dict] = []
    result = run(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path, run_id="widens", calls=calls)
    assert column_type(warehouse, "t_dst.wide", "code") == ("character varying(50)", False)
    assert column_type(warehouse, "t_dst.wide", "n") == ("bigint", False)
    assert column_type(warehouse, "t_dst.wide", "amount") == ("numeric(12,2)", False)
    columns = "id, code, n, amount, updated_at"
    assert warehouse_rows(warehouse, "t_dst.wide", columns) == \
        source.execute(f"SELECT {columns} FROM t_src.wide ORDER BY 1, 2").fetchall()
    assert in_sync(result)
    assert history(warehouse, "wide") == [
        ("code", "widened", "character varying(10)", "character varying(50)", "evolve", "applied", "widens"),
        ("n", "widened", "integer", "bigint", "evolve", "applied", "widens"),
        ("amount", "widened", "numeric(8,2)", "numeric(12,2)", "evolve", "applied", "widens"),
    ]
    assert len(calls) == 1 and len(calls[0]["changes"]) == 3


@pytest.mark.parametrize("policy", ["freeze", "discard"])
def test_freeze_and_discard_refuse_a_widening_and_commit_nothing(source, warehouse, tmp_path, policy):
    create(source, WIDE_DDL)
    pipeline = make_pipeline("wide", ("id",), schema_changes=policy)
    run(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path)
    source.execute("ALTER TABLE t_src.wide ALTER COLUMN n TYPE bigint")
    source.execute("UPDATE t_src.wide SET updated_at = %s WHERE id = 1", (T0 + 90 * timedelta(minutes=1),))
    source.commit()
    with pytest.raises(SchemaChanged, match=r"column 'n' changed type from integer to bigint"):
        run(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path)
    warehouse.rollback()
    assert column_type(warehouse, "t_dst.wide", "n") == ("integer", False)


NUMS_DDL = """
CREATE TABLE t_src.nums (id bigint PRIMARY KEY, big bigint, label text, updated_at timestamptz NOT NULL);
INSERT INTO t_src.nums SELECT i, i * 7, 'label ' || i, %(t0)s + i * interval '1 second' \
FROM generate_series(1, 12) AS i;
"""
NARROWINGS = {
    "bigint->integer": ("big", "ALTER TABLE t_src.nums ALTER COLUMN big TYPE integer", "bigint"),
    "text->integer": ("label", "ALTER TABLE t_src.nums ALTER COLUMN label TYPE integer USING length(label)", "text"),
}


@pytest.mark.parametrize("policy", ["evolve", "freeze", "discard"])
@pytest.mark.parametrize("kind", list(NARROWINGS))
def test_a_narrowing_or_incompatible_type_change_fails_under_every_policy_and_commits_nothing(
        source, warehouse, tmp_path, policy, kind):
    column, alter, old_type = NARROWINGS[kind]
    create(source, NUMS_DDL)
    pipeline = make_pipeline("nums", ("id",), schema_changes=policy)
    run(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path)
    before = warehouse_rows(warehouse, "t_dst.nums", "id, big, label, updated_at")
    source.execute(alter)
    source.execute("UPDATE t_src.nums SET updated_at = %s WHERE id <= 3", (T0 + 90 * timedelta(minutes=1),))
    source.commit()
    calls: list[dict] = []
    with pytest.raises(SchemaChanged) as info:
        run(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path, run_id="breaks", calls=calls)
    message = str(info.value)
    assert "t_src.nums" in message and "t_dst.nums" in message
    assert f"column {column!r} changed type from {old_type} to integer" in message
    assert f"ALTER TABLE t_dst.nums ALTER COLUMN {column} TYPE integer" in message and "Nothing was loaded" in message
    warehouse.rollback()
    assert column_type(warehouse, "t_dst.nums", column) == (old_type, False)
    assert warehouse_rows(warehouse, "t_dst.nums", "id, big, label, updated_at") == before
    change = "narrowed" if kind == "bigint->integer" else "incompatible"
    assert history(warehouse, "nums") == [(column, change, old_type, "integer", policy, "rejected", "breaks")]
    assert [(c["column"], c["outcome"]) for c in calls[0]["changes"]] == [(column, "rejected")]


DROPS_DDL = """
CREATE TABLE t_src.drops (id bigint PRIMARY KEY, note text, legacy integer NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO t_src.drops SELECT i, 'n' || i, i * 10, %(t0)s + i * interval '1 second' FROM generate_series(1, 10) AS i;
"""


def test_evolve_keeps_a_dropped_source_column_no_longer_filled_recorded_and_alerted(source, warehouse, tmp_path):
    create(source, DROPS_DDL)
    pipeline = make_pipeline("drops", ("id",))
    run(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path)
    source.execute("ALTER TABLE t_src.drops DROP COLUMN note, DROP COLUMN legacy")
    later = T0 + 90 * timedelta(minutes=1)
    source.execute("INSERT INTO t_src.drops VALUES (100, %s)", (later,))
    source.execute("UPDATE t_src.drops SET updated_at = %s WHERE id = 1", (later,))
    source.commit()
    calls: list[dict] = []
    result = run(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path, run_id="drops", calls=calls)
    assert in_sync(result)
    assert column_type(warehouse, "t_dst.drops", "note") == ("text", False)
    assert column_type(warehouse, "t_dst.drops", "legacy") == ("integer", False)  # NOT NULL dropped: no longer filled
    rows = dict((r[0], r[1:]) for r in warehouse_rows(warehouse, "t_dst.drops", "id, note, legacy, updated_at"))
    assert rows[100] == (None, None, later)  # a new row: not filled
    assert rows[1] == ("n1", 10, later)  # an updated row keeps the value it had
    assert rows[2][:2] == ("n2", 20)
    assert history(warehouse, "drops") == [("note", "dropped", "text", None, "evolve", "kept", "drops"),
                                           ("legacy", "dropped", "integer", None, "evolve", "kept", "drops")]
    (call,) = calls
    assert [(c["column"], c["outcome"]) for c in call["changes"]] == [("note", "kept"), ("legacy", "kept")]
    again = run(source, warehouse, pipeline, T0 + 2 * HOUR, T0 + 4 * HOUR, tmp_path, run_id="again", calls=calls)
    assert in_sync(again) and len(calls) == 1 and len(history(warehouse, "drops")) == 2  # recorded once


def test_a_schema_change_between_extract_and_load_fails_clearly_and_a_rerun_loads_it(source, warehouse, tmp_path):
    create_lines(source, orders=5)
    pipeline = lines_pipeline()
    run(source, warehouse, pipeline, T0, T0 + HOUR, tmp_path)
    source.execute("UPDATE t_src.lines SET qty = qty + 1, updated_at = %s WHERE order_id = 1",
                   (T0 + 90 * timedelta(minutes=1),))
    source.commit()
    mid = Run(pipeline, source, warehouse, "mid")
    planned = tasks.plan(mid, RunStart.scheduled(T0 + HOUR, T0 + 2 * HOUR, False))
    files = [tasks.extract(mid, planned, b, root=tmp_path) for b in planned.batches]
    source.execute("ALTER TABLE t_src.lines ADD COLUMN currency char(3) DEFAULT 'EUR'")  # after the extract
    source.commit()
    with pytest.raises(SchemaChanged, match="changed while this run was extracting"):
        tasks.load(mid, planned, files, open_path=Path)
    warehouse.rollback()
    assert column_type(warehouse, "t_dst.lines", "currency") is None  # the ALTER rolled back with the load
    assert history(warehouse, "lines") == []
    result = run(source, warehouse, pipeline, T0 + HOUR, T0 + 2 * HOUR, tmp_path, run_id="rerun")
    assert in_sync(result) and column_type(warehouse, "t_dst.lines", "currency") == ("character(3)", False)
    assert warehouse.execute("SELECT count(*) FROM t_dst.lines WHERE currency = 'EUR'").fetchone() == (20,)
