"""SQL text lives in ``include/sql/*.sql``; this module loads it and fills in quoted identifiers.

Templates use ``{name}`` placeholders for identifiers and SQL fragments (always built with
``psycopg.sql``), and ``%(name)s`` bind parameters for values: nothing is string-formatted.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

from psycopg import sql

from warehouse_sync.config import INCLUDE_DIR, TableRef

SQL_DIR = INCLUDE_DIR / "sql"


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    return (SQL_DIR / name).read_text()


def load_sql(name: str, **parts: sql.Composable) -> sql.Composed | sql.SQL:
    """Reads ``include/sql/<name>`` and substitutes ``{placeholders}`` with composed SQL parts.

    Args:
        name: File name under ``include/sql``.
        **parts: Identifiers and fragments (``sql.Identifier``, ``sql.SQL`` built here).

    Raises:
        FileNotFoundError: No such SQL file.
    """
    template = sql.SQL(_read(name))
    return template.format(**parts) if parts else template


def table_ident(table: TableRef) -> sql.Identifier:
    """``"schema"."table"`` as a quoted identifier."""
    return sql.Identifier(table.schema, table.name)


def idents(names: Iterable[str], prefix: str | None = None) -> sql.Composed:
    """A comma-separated list of quoted column identifiers, optionally qualified (``s."a", s."b"``)."""
    return sql.SQL(", ").join(sql.Identifier(prefix, n) if prefix else sql.Identifier(n) for n in names)


def row_of(names: Iterable[str], prefix: str | None = None) -> sql.Composed:
    """A row constructor ``("a", "b")`` for keyset comparisons."""
    return sql.SQL("({})").format(idents(names, prefix))


def placeholders(prefix: str, count: int) -> sql.Composed:
    """``(%(prefix_0)s, %(prefix_1)s, …)``: a row of ``count`` named bind parameters."""
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder(f"{prefix}_{i}") for i in range(count)))


def bind_row(prefix: str, values: Iterable[object]) -> dict[str, object]:
    """The parameters that go with :func:`placeholders`."""
    return {f"{prefix}_{i}": v for i, v in enumerate(values)}
