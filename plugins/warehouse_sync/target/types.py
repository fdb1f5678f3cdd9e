"""The warehouse type policy: which type each source column gets in the target, in one place.

A target column takes the source column's own type wherever the warehouse has it, so every value
and its text form stay the same; the exceptions are types that belong to the source's schema
rather than to the data:

=============================  ==============================  ========================================
source column                  target column                   why
=============================  ==============================  ========================================
a built-in type (``integer``,  the same type, with its         the warehouse has it
``numeric(12,2)``, ``jsonb``,  modifiers
``int[]``, …)
an enum (``mood``)             ``text`` (the label)            an enum's labels are the source's
                                                               schema: a label added there would fail
                                                               the warehouse's copy of the type
an array of an enum            ``text[]``                      element by element, as above
a domain (``posint``)          its base type (``integer``),    its constraint is the source's business;
                               domains of domains followed     the values are the base type's
                               to the end (an enum base:
                               ``text``)
any other type the warehouse   the same type                   e.g. PostGIS ``geometry`` /
has (``to_regtype`` finds the                                  ``geography`` where the warehouse has
name the source prints)                                        PostGIS installed
a type the warehouse lacks     ``text`` (``text[]`` for its    the source's text form, which its input
                               arrays)                         function reads back exactly: PostGIS
                                                               ``geometry`` / ``geography`` without
                                                               PostGIS are stored as their hex EWKB
                                                               text (``0101000020E6…``)
=============================  ==============================  ========================================

Values travel in the same way whatever the target type: cursor mode stages each column as its exact
Arrow type or, for types Arrow has none of, as PostgreSQL's text form (:mod:`warehouse_sync.db.catalog`);
CDC stages every value as its text form. The warehouse reads text forms with the target type's input
function, which is why ``text`` holds an enum label or an EWKB hex string exactly. The row hashes of
reconcile (:func:`warehouse_sync.db.catalog.hash_inputs`) hash enums, domains, arrays and unknown
types through their text form on both sides, so a column that changed type on the way hashes the same.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg

from warehouse_sync.db.catalog import Column
from warehouse_sync.db.statements import load_sql

TEXT = ("text", "text")
TEXT_ARRAY = ("text[]", "_text")


def looked_up(columns: list[Column]) -> list[str]:
    """The type names whose presence in the warehouse the policy depends on (enums need none)."""
    return sorted({c.base_type or c.sql_type for c in columns if c.kind not in ("enum", "enum[]")})


def warehouse_type(column: Column, known: Mapping[str, str | None]) -> tuple[str, str]:
    """The target type of a source column under the policy (module docstring).

    Args:
        column: A source column (:func:`warehouse_sync.db.catalog.describe_source`).
        known: Each name of :func:`looked_up` with the warehouse's ``pg_type.typname`` of it, or
            ``None`` when the warehouse has no such type (a name missing from it counts as ``None``).

    Returns:
        ``(sql_type, type_name)``: the target column's type as ``format_type`` prints it, and its
        ``typname`` (what :mod:`warehouse_sync.target.schema` compares).
    """
    if column.kind == "enum":
        return TEXT
    if column.kind == "enum[]":
        return TEXT_ARRAY
    base = column.base_type or column.sql_type
    type_name = known.get(base)
    if type_name is None:
        return TEXT_ARRAY if base.endswith("]") else TEXT
    return base, type_name


def warehouse_columns(conn: psycopg.Connection, columns: list[Column]) -> list[Column]:
    """The target's columns for ``columns`` (same names, order and ``NOT NULL``), with their warehouse types.

    Args:
        conn: Warehouse connection (one catalog query; its transaction is left open).
        columns: Source columns.

    Returns:
        One :class:`~warehouse_sync.db.catalog.Column` per source column, typed by :func:`warehouse_type`.
    """
    names = looked_up(columns)
    known: dict[str, str | None] = dict(conn.execute(load_sql("target/known_types.sql"), {"names": names}).fetchall())
    mapped = []
    for column in columns:
        sql_type, type_name = warehouse_type(column, known)
        mapped.append(Column(column.name, sql_type, type_name, column.not_null, sql_type))
    return mapped


def kept_as_found(wanted: list[Column], source: list[Column], target: list[Column]) -> list[Column]:
    """``wanted``, but a target column that already has its source column's own type keeps it.

    A target created before this policy, or by hand, may hold an enum or a domain the deployment
    created in the warehouse too; the policy never asks to change it (its values and text form
    are the source's).

    Args:
        wanted: The policy's target columns (:func:`warehouse_columns`), in source order.
        source: The source columns, in the same order.
        target: The existing target's columns.
    """
    found = {c.name: c for c in target}
    return [found[s.name] if s.name in found and found[s.name].sql_type == s.sql_type else w
            for w, s in zip(wanted, source)]

