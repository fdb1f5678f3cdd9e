"""What a table looks like: its columns, its key, and the exact Arrow schema of its rows.

Types are mapped exactly (no float for money, no naive time for ``timestamptz``):

=====================  ==============================  =====================================
PostgreSQL             Arrow                           note
=====================  ==============================  =====================================
smallint/int/bigint    int16 / int32 / int64
real / double          float32 / float64
numeric(p, s)          decimal128(p, s)                p <= 38; wider: string (exact text)
boolean                bool
date                   date32
timestamp              timestamp[us]
timestamptz            timestamp[us, tz=UTC]           sessions run with ``TIME ZONE 'UTC'``
time                   time64[us]
everything else        string                          PostgreSQL's text form, which its
                                                       input function reads back exactly
                                                       (text, char(n), uuid, json, bytea,
                                                       interval, arrays, enums, domains, …)
=====================  ==============================  =====================================

Some legal values have no Arrow value of the column's type: ``NaN`` of ``numeric(p,s)`` (an
unconstrained ``numeric``, which also holds ``±Infinity``, is text already); ``±infinity``, BC dates
and years past 9999 of ``date``, ``timestamp`` and ``timestamptz``; ``24:00:00`` of ``time``. A batch
that holds one is staged with those columns as their text form (``arrow_schema(columns,
as_text=True)``), which the load copies back as CSV: every value arrives exactly, whatever its type.
Floats need no such care: Arrow holds ``NaN`` and ``±Infinity``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
import pyarrow as pa
from psycopg import sql

from warehouse_sync.db.statements import load_sql
from warehouse_sync.model import TableRef

if TYPE_CHECKING:
    from warehouse_sync.config import ColumnSelection, Pipeline

_NUMERIC = re.compile(r"^numeric\((\d+),(\d+)\)$")
_SIMPLE_TYPES: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "time": pa.time64("us"),
}


class TableNotFound(LookupError):
    """The configured table does not exist (or is not visible to the connection's role)."""


class PrimaryKeyError(LookupError):
    """The configured primary key is missing, unknown, or not unique in the table."""


class UnknownColumn(LookupError):
    """A configured column (cursor, key, or one ``columns:`` names) is not a column of the table."""


@dataclass(frozen=True)
class Column:
    """One column: its name, SQL type as PostgreSQL prints it (``numeric(15,2)``), and Arrow type.

    Attributes:
        name: The column's name.
        sql_type: ``format_type`` of its type (``numeric(15,2)``, ``t_src.mood``).
        type_name: ``pg_type.typname`` of its type (``numeric``, ``mood``, ``_int4``).
        not_null: Whether it is ``NOT NULL``.
        base_type: ``format_type`` of the type a domain stands for (domains of domains followed to
            the end); the type itself for any other column; empty when not read from a catalog.
        kind: ``enum`` (an enum, or a domain of one), ``enum[]`` (an array of an enum) or empty:
            what the warehouse type policy (:mod:`warehouse_sync.target.types`) needs.
    """

    name: str
    sql_type: str
    type_name: str
    not_null: bool
    base_type: str = ""
    kind: str = ""

    @property
    def arrow_type(self) -> pa.DataType:
        """The column's Arrow type (:func:`arrow_type` of its type)."""
        return arrow_type(self.type_name, self.sql_type)


def arrow_type(type_name: str, sql_type: str) -> pa.DataType:
    """Maps a PostgreSQL type (``pg_type.typname`` and ``format_type`` text) to an Arrow type."""
    if type_name in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[type_name]
    match = _NUMERIC.match(sql_type)
    if type_name == "numeric" and match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if precision <= 38:
            return pa.decimal128(precision, scale)
    # Wider numerics (Arrow's CSV reader has no decimal256 conversion) travel as their exact text.
    return pa.string()


# Types whose values PostgreSQL hashes with an extended hash function (hash opclass); any other type
# (json, geometric types, xml, …) is hashed through its text form.
HASHABLE_TYPES = frozenset({
    "int2", "int4", "int8", "numeric", "float4", "float8", "bool", "text", "varchar", "bpchar", "char", "name",
    "date", "time", "timetz", "timestamp", "timestamptz", "interval", "uuid", "bytea", "jsonb", "oid", "inet",
})


def hash_inputs(columns: list[Column], alias: str = "r") -> sql.Composed:
    """The column list for ``hash_record_extended(ROW(...), 0)``.

    Each column as ``r."c"``, or ``r."c"::text`` for a type without an extended hash function.

    The row hash uses each type's own hash function (as hash partitioning does), so it follows the
    type's equality: ``1.0 = 1.00`` for ``numeric``, trailing blanks of ``char(n)``; it is independent
    of the session's time zone and date style. Both databases must run on the same byte order.
    """
    return sql.SQL(", ").join(
        sql.Identifier(alias, c.name) if c.type_name in HASHABLE_TYPES
        else sql.SQL("{}::text").format(sql.Identifier(alias, c.name))
        for c in columns
    )


def read_columns(conn: psycopg.Connection, table: TableRef) -> list[Column]:
    """Lists a table's columns in table order.

    Raises:
        TableNotFound: The table does not exist or is not visible.
    """
    rows = conn.execute(load_sql("catalog/table_columns.sql"), {"schema": table.schema, "table": table.name}).fetchall()
    if not rows:
        raise TableNotFound(f"table {table} does not exist (or is not visible to this role)")
    return [Column(*row) for row in rows]


def _holds_every_value(kind: pa.DataType) -> bool:
    """Whether an Arrow type holds every value of the PostgreSQL types mapped to it (their text form does)."""
    return pa.types.is_string(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind) or \
        pa.types.is_boolean(kind)


def arrow_schema(columns: list[Column], as_text: bool = False) -> pa.Schema:
    """The Arrow schema of a table's rows: one field per column, nullable unless ``NOT NULL``.

    Args:
        columns: The table's columns.
        as_text: Every column whose Arrow type cannot hold all of its type's values (``numeric(p,s)``
            ``NaN``; ``date``/``timestamp``/``timestamptz`` ``±infinity``, BC dates and years past
            9999; ``time`` ``24:00:00``) is a string of PostgreSQL's text form instead (module
            docstring).
    """
    fields = []
    for c in columns:
        kind = c.arrow_type
        if as_text and not _holds_every_value(kind):
            kind = pa.string()
        fields.append(pa.field(c.name, kind, nullable=not c.not_null))
    return pa.schema(fields)



def check_key_and_cursor(
    conn: psycopg.Connection, table: TableRef, columns: list[Column], primary_key: tuple[str, ...], cursor: str
) -> None:
    """Checks that the configured key and cursor fit the table.

    The key must be the table's primary key or the columns of a unique index (not partial, not on
    expressions) whose columns are all NOT NULL: a key identifies every row, and a unique index
    lets two rows with a NULL in a key column share the rest.

    Raises:
        UnknownColumn: The cursor or a key column is not in the table.
        PrimaryKeyError: No primary key or unique index over NOT NULL columns has exactly the
            configured key columns. The message says what the table has and the way out: give
            ``primary_key: [cols]`` naming the columns of a unique index over NOT NULL columns.
    """
    names = {c.name for c in columns}
    for role, col in [("cursor", cursor)] + [("primary key", k) for k in primary_key]:
        if col not in names:
            raise UnknownColumn(f"table {table}: {role} column {col!r} does not exist (columns: {sorted(names)})")
    keys = conn.execute(load_sql("catalog/unique_keys.sql"), {"schema": table.schema, "table": table.name}).fetchall()
    usable = [list(cols) for _, cols, not_null in keys if not_null]
    if any(set(cols) == set(primary_key) for cols in usable):
        return
    actual = next((list(cols) for is_pk, cols, _ in keys if is_pk), None)
    nullable = next((list(cols) for _, cols, not_null in keys if not not_null and set(cols) == set(primary_key)),
                    None)
    by_name = {c.name: c for c in columns}
    if nullable is not None:
        open_columns = [c for c in nullable if not by_name[c].not_null]
        found = (f"its unique index over {nullable} allows NULL in {open_columns}, so it does not identify every "
                 f"row (make them NOT NULL, or name another key)")
    elif actual is not None:
        found = f"its primary key is {actual}"
    else:
        found = "it has no primary key"
    others = [cols for is_pk, cols, not_null in keys if not_null and not is_pk]
    candidates = (f"; its unique indexes over NOT NULL columns: {others}" if others else
                  "" if actual else "; it has no unique index over NOT NULL columns either (create one)")
    raise PrimaryKeyError(
        f"table {table}: configured primary_key {list(primary_key)} is not its primary key or a unique index over "
        f"NOT NULL columns; {found}{candidates}. Give `primary_key: [cols]` in the pipeline naming "
        + (f"{actual}, or " if actual else "")
        + "the columns of a unique index whose columns are all NOT NULL"
    )


def primary_key_of(conn: psycopg.Connection, table: TableRef) -> tuple[str, ...] | None:
    """The columns of ``table``'s PRIMARY KEY constraint, in key order, or ``None`` (none, or no table).

    A primary key makes its columns NOT NULL and their values unique among every row of the table.
    """
    keys = conn.execute(load_sql("catalog/unique_keys.sql"), {"schema": table.schema, "table": table.name}).fetchall()
    return next((tuple(cols) for is_primary, cols, _ in keys if is_primary), None)


def select_columns(table: TableRef, columns: list[Column], selection: ColumnSelection | None,
                   always: tuple[str, ...]) -> list[Column]:
    """The columns a pipeline syncs: ``columns`` filtered by its ``columns:`` selection.

    Args:
        table: The source table (for the message).
        columns: The table's columns, in table order.
        selection: The pipeline's include or exclude list; ``None`` keeps every column.
        always: Columns kept whatever the selection says (the primary key and the cursor).

    Returns:
        The kept columns, in table order.

    Raises:
        UnknownColumn: The selection names a column the table does not have.
    """
    if selection is None:
        return columns
    names = {c.name for c in columns}
    unknown = [c for c in selection.named if c not in names]
    if unknown:
        which = "include" if selection.include is not None else "exclude"
        raise UnknownColumn(f"table {table}: columns.{which} names {unknown}, which the table does not have "
                            f"(columns: {sorted(names)})")
    return [c for c in columns if selection.keeps(c.name, always)]


def describe_source(
    conn: psycopg.Connection, table: TableRef, primary_key: tuple[str, ...], cursor: str,
    selection: ColumnSelection | None = None,
) -> list[Column]:
    """Reads and validates a source table (columns, key, cursor) in one call.

    Args:
        conn: The source connection.
        table: The source table.
        primary_key: The configured key columns.
        cursor: The configured cursor column.
        selection: The pipeline's ``columns:`` selection (:func:`select_columns`); ``None``: all.

    Returns:
        The synced columns, in table order: every column the selection keeps.

    Raises:
        TableNotFound, UnknownColumn, PrimaryKeyError: As for :func:`read_columns`,
            :func:`check_key_and_cursor` and :func:`select_columns`.
    """
    columns = read_columns(conn, table)
    check_key_and_cursor(conn, table, columns, primary_key, cursor)
    return select_columns(table, columns, selection, (*primary_key, cursor))


class UnusableCursor(ValueError):
    """The cursor column's type cannot bound a window: not a ``timestamp``, ``timestamptz`` or integer.

    The message names the pipeline, the column's type and the fix.
    """


class CursorTimeZone(UnusableCursor):
    """A ``timestamp without time zone`` cursor without ``cursor_time_zone``, or that setting on another cursor.

    The message names the pipeline, the column's type and the fix.
    """


def describe_pipeline_source(conn: psycopg.Connection, pipeline: Pipeline) -> list[Column]:
    """:func:`describe_source` of a pipeline: its source, key, cursor and ``columns:`` selection.

    The one place the selection is applied: every mode's plan, extract and load and the reconcile
    use the columns it returns, so an excluded column is never read, staged, created or compared.
    Also the one place the cursor's type is checked against ``cursor_time_zone``
    (:func:`check_cursor_time_zone`).

    Raises:
        CursorTimeZone: The cursor's type and ``cursor_time_zone`` do not fit together.
    """
    columns = describe_source(conn, pipeline.source, pipeline.primary_key, pipeline.cursor, pipeline.columns)
    check_cursor_time_zone(conn, pipeline, columns)
    return columns


def check_cursor_time_zone(conn: psycopg.Connection, pipeline: Pipeline, columns: list[Column]) -> None:
    """Refuses a ``timestamp without time zone`` cursor unless the pipeline says in which zone it is written.

    Its values are wall-clock times: read as UTC, a source writing local time would put rows into
    windows already synced (docs/operating.md, "Hostile sources"). With ``cursor_time_zone`` the
    window bounds are compared as wall-clock times of that zone
    (:func:`warehouse_sync.db.statements.cursor_value`), which a ``timestamptz`` cursor must not be.

    Raises:
        UnusableCursor: The cursor is neither a ``timestamp``/``timestamptz`` nor an integer column.
        CursorTimeZone: A naive cursor without ``cursor_time_zone`` (the message gives the source's
            ``TimeZone`` setting as a hint), or a ``timestamptz`` or integer cursor with it.
    """
    column = next((c for c in columns if c.name == pipeline.cursor), None)
    if column is None:
        return
    base = column.base_type or column.sql_type
    if not base.startswith("timestamp") and not integer_cursor(pipeline, columns):
        raise UnusableCursor(
            f"pipeline {pipeline.name}: cursor column {pipeline.cursor!r} of {pipeline.source} is {column.sql_type}; "
            "a cursor must be timestamptz, timestamp (with cursor_time_zone) or an integer that a sequence sets on "
            "every insert and update (smallint, integer, bigint). Add such a column (e.g. updated_at timestamptz "
            "NOT NULL DEFAULT now(), kept by a trigger) or sync the table with mode: cdc.")
    naive = base.startswith("timestamp") and base.endswith("without time zone")
    if naive and pipeline.cursor_time_zone is None:
        (zone,) = conn.execute("SHOW TimeZone").fetchone()  # type: ignore[misc]
        raise CursorTimeZone(
            f"pipeline {pipeline.name}: cursor column {pipeline.cursor!r} of {pipeline.source} is {column.sql_type}: "
            "its values are wall-clock times of some time zone, and read as UTC a source writing local time puts "
            "rows into windows already synced. Set cursor_time_zone in the pipeline to the IANA zone the "
            f"application writes it in (e.g. cursor_time_zone: Europe/Berlin; the source server's TimeZone "
            f"setting is {zone}; UTC if it writes UTC), or make the column timestamptz.")
    if integer_cursor(pipeline, columns) and pipeline.cursor_time_zone is not None:
        raise CursorTimeZone(
            f"pipeline {pipeline.name}: cursor_time_zone {pipeline.cursor_time_zone} is set, but cursor column "
            f"{pipeline.cursor!r} of {pipeline.source} is {column.sql_type}, an integer with no time; remove "
            "cursor_time_zone from the pipeline.")
    if not naive and pipeline.cursor_time_zone is not None:
        raise CursorTimeZone(
            f"pipeline {pipeline.name}: cursor_time_zone {pipeline.cursor_time_zone} is set, but cursor column "
            f"{pipeline.cursor!r} of {pipeline.source} is {column.sql_type}, whose values are instants; remove "
            "cursor_time_zone from the pipeline.")


def integer_cursor(pipeline: Pipeline, columns: list[Column]) -> bool:
    """Whether the pipeline's cursor is an integer column (``smallint``, ``integer``, ``bigint`` or a domain of one).

    Its windows are then resolved into the cursor's values by marks (:mod:`warehouse_sync.bookkeeping.marks`).
    """
    column = next((c for c in columns if c.name == pipeline.cursor), None)
    return column is not None and (column.base_type or column.sql_type) in {"smallint", "integer", "bigint"}


def column_definitions(columns: list[Column]) -> sql.Composable:
    """``name type [NOT NULL]`` for each column, comma-separated (for ``CREATE TABLE``)."""
    return sql.SQL(",\n    ").join(
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name), sql.SQL(c.sql_type), sql.SQL(" NOT NULL" if c.not_null else "")
        )
        for c in columns
    )


RELATION_EXISTS = "SELECT to_regclass(%s) IS NOT NULL"
ROW_ESTIMATE = "SELECT c.reltuples FROM pg_catalog.pg_class AS c WHERE c.oid = to_regclass(%s)"


def relation_exists(conn: psycopg.Connection, schema: str, name: str) -> bool:
    """Whether a table or index ``schema.name`` exists, looked up by ``to_regclass`` (no lock taken)."""
    found = conn.execute(RELATION_EXISTS, (sql.Identifier(schema, name).as_string(conn),)).fetchone()
    return bool(found and found[0])


def row_estimate(conn: psycopg.Connection, table: TableRef) -> float | None:
    """The planner's row count of ``table`` (``pg_class.reltuples``).

    ``-1`` when never vacuumed or analyzed (PostgreSQL 14+), ``None`` when the table does not exist.
    """
    found = conn.execute(ROW_ESTIMATE, (sql.Identifier(table.schema, table.name).as_string(conn),)).fetchone()
    return None if found is None else float(found[0])
