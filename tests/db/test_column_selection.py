"""Config that fits real tables, on a real PostgreSQL: a column left out by ``columns: {exclude: [...]}``
never reaches a staged file or the warehouse, in cursor mode and CDC mode, and the reconcile still
matches; a column the selection names that the table lacks, and a table without a usable key, are
refused at plan time with a message that says what to do."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import T0, logical_wal_source, make_pipeline, run_tasks, sync_window

from warehouse_sync import tasks
from warehouse_sync.config import ColumnSelection
from warehouse_sync.db.catalog import PrimaryKeyError, UnknownColumn
from warehouse_sync.model import RunStart
from warehouse_sync.run import Run

PEOPLE_DDL = """
CREATE TABLE t_src.people (
    id          bigint       PRIMARY KEY,
    name        text         NOT NULL,
    email       text,
    phone       text,
    updated_at  timestamptz  NOT NULL
);
CREATE INDEX ON t_src.people (updated_at, id);
"""
SYNCED = "id, name, phone, updated_at"


def create_people(conn, count: int = 30) -> None:
    conn.execute(PEOPLE_DDL)
    conn.execute("INSERT INTO t_src.people SELECT i, 'person ' || i, 'p' || i || '@example.com', '+41 ' || i, "
                 "%s + i * interval '1 minute' FROM generate_series(1, %s) i", (T0, count))
    conn.commit()


def people_pipeline(**settings):
    return make_pipeline("people", ("id",), columns=ColumnSelection(exclude=("email",)), **settings)


def staged_columns(result: dict) -> set[str]:
    """Every column name of every Parquet file the run staged."""
    paths = [f["path"] for extracted in result["files"] for f in extracted["files"]]
    assert paths, "the run staged nothing"
    return {name for path in paths for name in pq.read_schema(path.removeprefix("file://")).names}


def target_columns(warehouse, table: str = "people") -> list[str]:
    names = [n for (n,) in warehouse.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 't_dst' AND table_name = %s "
        "ORDER BY ordinal_position", (table,)).fetchall()]
    warehouse.commit()
    return [n for n in names if not n.startswith("_")]


def rows(conn, table: str) -> list[tuple]:
    found = conn.execute(f"SELECT {SYNCED} FROM {table} ORDER BY id").fetchall()  # test-only SQL
    conn.commit()
    return found


def assert_daily_reconcile_matches(source, warehouse, pipeline) -> None:
    daily = tasks.reconcile_table(Run(pipeline, source, warehouse, "daily"))
    assert not daily.keys_differed and all(c.matches for c in daily.comparisons), daily.to_dict()


def test_an_excluded_column_is_never_staged_or_created_in_cursor_mode_and_the_reconcile_matches(
        source, warehouse, tmp_path):
    create_people(source)
    pipeline = people_pipeline(initial_load="snapshot")
    first = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path, "r1")
    assert first["planned"]["window"]["start"] is None  # the first run is a snapshot (its build table too)
    assert "email" not in staged_columns(first) and {"id", "name", "phone"} <= staged_columns(first)
    assert target_columns(warehouse) == ["id", "name", "phone", "updated_at"]
    assert rows(warehouse, "t_dst.people") == rows(source, "t_src.people")

    later = T0 + timedelta(hours=1, minutes=5)
    source.execute("UPDATE t_src.people SET email = 'changed@example.com', updated_at = %s WHERE id = 3", (later,))
    source.execute("UPDATE t_src.people SET phone = NULL, updated_at = %s WHERE id = 4", (later,))
    source.execute("INSERT INTO t_src.people VALUES (99, 'new', 'new@example.com', '+1', %s)", (later,))
    source.commit()
    second = sync_window(source, warehouse, pipeline, T0 + timedelta(hours=1), T0 + timedelta(hours=2), tmp_path,
                         "r2")
    assert second["loaded"]["merged"] == 3 and "email" not in staged_columns(second)
    assert second["reconciled"]["drift"] is None
    assert all(c["matches"] for c in second["reconciled"]["comparisons"])
    assert target_columns(warehouse) == ["id", "name", "phone", "updated_at"]
    assert rows(warehouse, "t_dst.people") == rows(source, "t_src.people")
    assert_daily_reconcile_matches(source, warehouse, pipeline)


def test_an_include_list_syncs_only_its_columns_with_the_key_and_cursor(source, warehouse, tmp_path):
    create_people(source)
    pipeline = make_pipeline("people", ("id",), columns=ColumnSelection(include=("name",)))
    result = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path)
    assert staged_columns(result) == {"id", "name", "updated_at"}
    assert target_columns(warehouse) == ["id", "name", "updated_at"]
    assert result["reconciled"]["drift"] is None


@pytest.mark.parametrize("columns, named", [(ColumnSelection(exclude=("emial",)), "columns.exclude names ['emial']"),
                                            (ColumnSelection(include=("name", "nickname")),
                                             "columns.include names ['nickname']")])
def test_a_selected_column_the_table_lacks_fails_the_plan_naming_column_and_table(source, warehouse, tmp_path,
                                                                                  columns, named):
    create_people(source)
    with pytest.raises(UnknownColumn) as info:
        tasks.plan(Run(make_pipeline("people", ("id",), columns=columns), source, warehouse, "r1"),
                   RunStart.scheduled(T0, T0 + timedelta(hours=1)))
    assert str(info.value).startswith(f"table t_src.people: {named}, which the table does not have")


# --- a table without a primary key ---------------------------------------------------------------------

EVENTS_DDL = """
CREATE TABLE t_src.events (
    event_id    bigint       NOT NULL,
    device      text,
    payload     text,
    updated_at  timestamptz  NOT NULL
)
"""


def create_events(conn) -> None:
    conn.execute(EVENTS_DDL)
    conn.execute("INSERT INTO t_src.events SELECT i, 'd' || i, 'x', %s FROM generate_series(1, 10) i", (T0,))


def plan_events(source, warehouse, primary_key: tuple[str, ...]):
    return tasks.plan(Run(make_pipeline("events", primary_key), source, warehouse, "r1"),
                      RunStart.scheduled(T0, T0 + timedelta(hours=1)))


def test_a_table_without_a_primary_key_is_refused_naming_the_way_out(source, warehouse):
    create_events(source)
    source.commit()
    with pytest.raises(PrimaryKeyError) as info:
        plan_events(source, warehouse, ("event_id",))
    message = str(info.value)
    assert message.startswith("table t_src.events: configured primary_key ['event_id'] is not its primary key or "
                              "a unique index over NOT NULL columns; it has no primary key; it has no unique index "
                              "over NOT NULL columns either (create one)."), message
    assert message.endswith("Give `primary_key: [cols]` in the pipeline naming the columns of a unique index "
                            "whose columns are all NOT NULL")


def test_a_unique_index_over_a_nullable_column_is_not_a_key(source, warehouse):
    create_events(source)
    source.execute("CREATE UNIQUE INDEX ON t_src.events (device)")
    source.execute("CREATE UNIQUE INDEX ON t_src.events (event_id, lower(payload))")  # an expression index
    source.commit()
    with pytest.raises(PrimaryKeyError, match=r"its unique index over \['device'\] allows NULL in \['device'\]"):
        plan_events(source, warehouse, ("device",))
    with pytest.raises(PrimaryKeyError, match="it has no primary key"):
        plan_events(source, warehouse, ("event_id",))  # its only index on event_id is on an expression too


def test_a_table_without_a_primary_key_syncs_on_a_unique_index_over_not_null_columns(source, warehouse, tmp_path):
    create_events(source)
    source.execute("CREATE UNIQUE INDEX ON t_src.events (event_id)")
    source.commit()
    pipeline = make_pipeline("events", ("event_id",))
    result = sync_window(source, warehouse, pipeline, T0, T0 + timedelta(hours=1), tmp_path)
    assert result["loaded"]["merged"] == 10 and result["reconciled"]["drift"] is None


# --- CDC mode ------------------------------------------------------------------------------------------

@pytest.fixture
def cdc_people(source):
    """``t_src.people`` on a server with wal_level=logical (else skipped), with no slot or publication of ours."""
    with logical_wal_source(source, ("people",)) as conn:
        create_people(conn, 20)
        yield conn


def cdc_run(source, warehouse, pipeline, root: Path, run_id: str) -> dict:
    start = RunStart(None, None, None, datetime.now(timezone.utc), manual=True)
    return run_tasks(source, warehouse, pipeline, start, root, run_id)


def test_an_excluded_column_is_never_staged_or_created_in_cdc_mode_and_the_reconcile_matches(
        cdc_people, warehouse, tmp_path):
    pipeline = people_pipeline(mode="cdc", cdc={"chunk_changes": 7})
    first = cdc_run(cdc_people, warehouse, pipeline, tmp_path, "c1")
    assert first["files"][0]["facts"]["kind"] == "snapshot"
    assert "email" not in staged_columns(first) and {"id", "name", "phone"} <= staged_columns(first)
    assert target_columns(warehouse) == ["id", "name", "phone", "updated_at"]

    cdc_people.execute("UPDATE t_src.people SET email = 'only-email@example.com', updated_at = now() WHERE id = 3")
    cdc_people.execute("UPDATE t_src.people SET name = 'renamed', updated_at = now() WHERE id = 4")
    cdc_people.execute("INSERT INTO t_src.people VALUES (99, 'new', 'new@example.com', '+1', now())")
    cdc_people.execute("DELETE FROM t_src.people WHERE id = 5")
    cdc_people.commit()
    second = cdc_run(cdc_people, warehouse, pipeline, tmp_path, "c2")
    assert second["files"][0]["facts"]["kind"] == "changes" and second["loaded"]["staged"] == 4
    assert "email" not in staged_columns(second)
    assert target_columns(warehouse) == ["id", "name", "phone", "updated_at"]
    live = warehouse.execute(f"SELECT {SYNCED} FROM t_dst.people WHERE _deleted_at IS NULL ORDER BY id").fetchall()
    warehouse.commit()
    assert live == rows(cdc_people, "t_src.people")
    assert second["reconciled"]["drift"] is None
    assert_daily_reconcile_matches(cdc_people, warehouse, pipeline)
