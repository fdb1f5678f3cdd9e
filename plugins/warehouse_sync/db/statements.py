"""SQL statements: the files under ``warehouse_sync/sql/<room>/`` and the helpers that compose them.

The rule (docs/decisions/0015-sql-in-files-identifiers-composed.md): a statement longer than two
lines lives in a file of the package's ``sql/`` folder, in the sub-folder of the room that runs it
(``sync``, ``reconcile``, ...), and is read here as package data (``importlib.resources``, so it
works from a checkout, a wheel or an image alike); a statement of one or two lines is a
``psycopg.sql`` constant beside its one use.

Templates use ``{name}`` placeholders for identifiers and fragments, always composed with
``psycopg.sql`` (``sql.Identifier`` for every name), and ``%(name)s`` bind parameters for values:
nothing is string-formatted.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from importlib.resources import files
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from psycopg import sql

from warehouse_sync.model import TableRef, Window

# Used by both the load and the repair: a staging table shaped like the target, gone at commit,
# and a CSV COPY into it.
CREATE_STAGING = sql.SQL("CREATE TEMP TABLE {staging} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
COPY_CSV = sql.SQL("COPY {table} ({columns}) FROM STDIN (FORMAT csv)")
# Serialises DDL of concurrent first runs (target tables, bookkeeping tables) for one transaction.
DDL_LOCK = sql.SQL("SELECT pg_advisory_xact_lock(hashtext('warehouse_sync.ddl'))")


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    return files("warehouse_sync").joinpath("sql", *name.split("/")).read_text(encoding="utf-8")


def load_sql(name: str, **parts: sql.Composable) -> sql.Composed | sql.SQL:
    """Reads ``warehouse_sync/sql/<name>`` and fills its ``{placeholders}`` with composed SQL.

    Args:
        name: Path under the package's ``sql`` folder, e.g. ``"sync/merge_staging.sql"``.
        **parts: Identifiers and fragments (``sql.Identifier``, ``sql.SQL`` built in code).

    Returns:
        The statement, ready for ``execute``.

    Raises:
        FileNotFoundError: No such file in the package.
    """
    template = sql.SQL(_read(name))
    return template.format(**parts) if parts else template


def table_ident(table: TableRef) -> sql.Identifier:
    """``"schema"."table"`` as a quoted identifier."""
    return sql.Identifier(table.schema, table.name)


def tombstone_index(table: TableRef) -> str:
    """Name of the target's partial index of soft-deleted keys (``<table>_tombstones_idx``, at most 63 bytes).

    Built with the target (``target/create_target.sql``), read by the per-run key check (``reconcile.keys``).
    """
    return f"{table.name}_tombstones_idx"[:63]


def cursor_index(table: TableRef, cursor: str) -> str:
    """Name of the target's cursor index (``<table>_<cursor>_idx``, at most 63 bytes).

    Built by the first load (``sync.load``, ``target.build``), read by validate and the window comparison.
    """
    return f"{table.name}_{cursor}_idx"[:63]


def idents(names: Iterable[str], prefix: str | None = None) -> sql.Composed:
    """A comma-separated list of quoted column identifiers, optionally qualified (``s."a", s."b"``)."""
    return sql.SQL(", ").join(sql.Identifier(prefix, n) if prefix else sql.Identifier(n) for n in names)


def text_of(names: Iterable[str]) -> sql.Composed:
    """``"a"::text, "b"::text``: columns as PostgreSQL's text form.

    Values in it travel through XCom or Parquet exactly and bind back as untyped literals.
    """
    return sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(n)) for n in names)


def row_of(names: Iterable[str], prefix: str | None = None) -> sql.Composed:
    """A row constructor ``("a", "b")`` for keyset comparisons."""
    return sql.SQL("({})").format(idents(names, prefix))


def placeholders(prefix: str, count: int) -> sql.Composed:
    """``(%(prefix_0)s, %(prefix_1)s, …)``: a row of ``count`` named bind parameters."""
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder(f"{prefix}_{i}") for i in range(count)))


def bind_row(prefix: str, values: Iterable[object]) -> dict[str, object]:
    """The parameters that go with :func:`placeholders`."""
    return {f"{prefix}_{i}": v for i, v in enumerate(values)}


def cursor_value(instant: datetime, zone: str | None) -> datetime:
    """A UTC instant as the parameter a cursor is compared with.

    The instant itself for a ``timestamptz`` cursor (``zone`` ``None``); for a ``timestamp without time
    zone`` cursor written in ``zone`` (the pipeline's ``cursor_time_zone``), the wall-clock time there,
    naive, so PostgreSQL compares two ``timestamp`` values whatever the session's ``TimeZone``. The
    mapping never goes backwards (in a DST fall-back hour two instants give one wall-clock time), so
    windows that share their bounds still tile the cursor's values: each row is in exactly one.
    """
    return instant if zone is None else instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def end_value(window: Window, zone: str | None = None) -> Any:
    """The cursor value ``window.end`` stands for: its integer bound, or the instant as :func:`cursor_value` has it."""
    return window.cursor_end if window.is_integer else cursor_value(window.end, zone)


def window_filter(cursor: str, window: Window, prefix: str | None = None,
                  zone: str | None = None) -> tuple[sql.Composable, dict[str, Any]]:
    """SQL predicate and parameters for ``cursor`` in ``window`` (half-open).

    ``zone``: the pipeline's ``cursor_time_zone`` (:func:`cursor_value`). An integer cursor's window
    is compared by its own bounds (``cursor_start``, ``cursor_end``; :class:`~warehouse_sync.model.Window`).
    """
    column = sql.Identifier(prefix, cursor) if prefix else sql.Identifier(cursor)
    params: dict[str, Any] = {"window_end": end_value(window, zone)}
    clause = sql.SQL("{c} < %(window_end)s").format(c=column)
    start = None if window.start is None else (window.cursor_start if window.is_integer
                                               else cursor_value(window.start, zone))
    if start is not None:
        clause = sql.SQL("{c} >= %(window_start)s AND ").format(c=column) + clause
        params["window_start"] = start
    return clause, params
