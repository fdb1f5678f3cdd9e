"""Keyset batches of a table's key order: how both modes cut a snapshot into mapped batches.

A batch is a half-open range ``[lower, upper)`` of the key order (:class:`warehouse_sync.model.Batch`);
batches tile it, the first with no lower bound and the last with no upper one, so every row is in
exactly one even if it arrives after planning. Cursor mode cuts its snapshots here (and its windows,
in ``(cursor, key)`` order, with :func:`at_most` and :func:`tile`); CDC mode cuts its snapshot here too.

Boundaries come from one index-order scan with ``row_number()`` over the key columns: never
``OFFSET``, which skips or repeats rows when rows move during a run (the "OFFSET trap"; see
use-the-index-luke.com/no-offset). A table with an integer first key column and a row estimate
needs no scan: its key range is cut into equal parts, each cut moved to a real key by one index
probe (:func:`_snapshot_starts`).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from warehouse_sync.config import Pipeline
from warehouse_sync.db.statements import bind_row, idents, load_sql, placeholders, row_of, table_ident, text_of
from warehouse_sync.model import Batch

log = logging.getLogger(__name__)
EVERY_ROW = sql.SQL("TRUE")
COUNT_ROWS = sql.SQL("SELECT count(*) FROM {table} WHERE {window}")


def max_map_length() -> int:
    """Airflow's ``[core] max_map_length``: the most tasks one mapped task may expand into (default 1 024).

    Both modes cut a snapshot into at most this many batches (:func:`key_batches`).
    """
    from airflow.configuration import conf

    return conf.getint("core", "max_map_length", fallback=1024)


def key_batches(conn: psycopg.Connection, pipeline: Pipeline, size: int, max_batches: int | None = None,
                where: sql.Composable = EVERY_ROW, params: dict[str, Any] | None = None) -> list[Batch]:
    """Cuts the rows of ``pipeline.source`` matching ``where`` into key-order batches of about ``size`` rows.

    Args:
        conn: Source connection.
        pipeline: The table's configuration (its source and primary key).
        size: Rows per batch (about, when cut from the key's range).
        max_batches: The most batches (Airflow's ``[core] max_map_length``); ``None``: no bound.
        where: Which rows (a window's predicate); every row by default.
        params: The predicate's parameters.

    Returns:
        Batches in key order, bounds as text tuples of the key columns; empty when no row matches.
    """
    params = params or {}
    starts = _snapshot_starts(conn, pipeline, where, params, size)
    if starts is None:
        keys = pipeline.primary_key
        query = load_sql("sync/plan_boundaries.sql", key_text=text_of(keys), keys=idents(keys),
                         table=table_ident(pipeline.source), window=where)
        with conn.cursor() as cur:
            starts = [tuple(row[:-1]) for row in cur.execute(query, {**params, "batch_size": size})]
        conn.commit()
    return tile(at_most(starts, max_batches, pipeline))


def key_range_filter(keys: tuple[str, ...], batch: Batch) -> tuple[list[sql.Composable], dict[str, Any]]:
    """SQL predicates and parameters for the keyset row ``keys`` within ``batch``'s bounds (none when unbounded)."""
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if batch.lower is not None:
        parts.append(sql.SQL("{} >= {}").format(row_of(keys), placeholders("lower", len(keys))))
        params.update(bind_row("lower", batch.lower))
    if batch.upper is not None:
        parts.append(sql.SQL("{} < {}").format(row_of(keys), placeholders("upper", len(keys))))
        params.update(bind_row("upper", batch.upper))
    return parts, params


def at_most(starts: list[tuple[Any, ...]], max_batches: int | None, pipeline: Pipeline) -> list[tuple[Any, ...]]:
    """Every ``k``-th batch start, the smallest ``k`` that leaves at most ``max_batches`` (batches merged in order)."""
    if max_batches is None or len(starts) <= max_batches:
        return starts
    k = -(-len(starts) // max_batches)
    log.warning("%s: %d batches would exceed the %d mapped tasks Airflow allows ([core] max_map_length); "
                "merged %d by %d into %d bigger batches (each still read page by page)", pipeline.source,
                len(starts), max_batches, len(starts), k, len(starts[::k]))
    return starts[::k]


def tile(starts: list[tuple[Any, ...]]) -> list[Batch]:
    """Batches from their first keys, in order: the first has no lower bound, the last no upper one."""
    return [Batch(index=i, lower=None if i == 0 else start, upper=starts[i + 1] if i + 1 < len(starts) else None)
            for i, start in enumerate(starts)]


def _snapshot_starts(conn: psycopg.Connection, pipeline: Pipeline, window: sql.Composable,
                     params: dict[str, Any], size: int) -> list[tuple[Any, ...]] | None:
    """First keys of a snapshot's batches without reading the key index.

    The first key column's ``[min, max]`` cut into equal ranges, one per ``size`` rows of the
    planner's row estimate, each cut moved to the first key at or after it (one index probe each).

    Batches then hold about ``size`` rows when the key is spread evenly (TPC-H: within
    a few percent); a skewed key gives uneven batches, never a lost or repeated row (they tile the
    key order as the ``row_number()`` scan's do) and never more memory (a batch is read in pages).
    Measured on TPC-H SF 1 lineitem: 7 probes instead of a 2.6 s ``row_number()`` pass over 6 M keys.

    A table never analyzed (no row estimate yet: a new table's first snapshot) has the window's rows
    counted instead, one scan with no sort: measured on TPC-H SF 1 orders, 2.87 s for the
    ``row_number()`` pass it replaces.

    Returns:
        The first keys (as text, like ``plan_boundaries.sql``'s); none when the window has no row;
        ``None`` when the first key column is not an integer: the caller then cuts the batches by its
        ``row_number()`` scan.
    """
    table, first = table_ident(pipeline.source), sql.Identifier(pipeline.primary_key[0])
    keys = pipeline.primary_key
    span = load_sql("sync/snapshot_span.sql", first=first, table=table, window=window)
    found = conn.execute(span, {**params, "table": table.as_string(conn)}).fetchone()
    any_row, estimate, low, high = found if found is not None else (False, None, None, None)
    if not any_row:
        conn.commit()
        return []
    if isinstance(estimate, int) and estimate < 0:  # never analyzed: count the window's rows (one scan, no sort)
        (estimate,) = conn.execute(COUNT_ROWS.format(table=table, window=window), params).fetchone() or (None,)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (estimate, low, high)):
        conn.commit()
        return None
    parts = max(1, -(-estimate // size))
    probe = load_sql("sync/first_key_from.sql", table=table, first=first, keys=idents(keys, "t"),
                     key_text=text_of(keys))
    starts: list[tuple[Any, ...]] = [tuple([None] * len(keys))]  # the first batch has no lower bound
    for part in range(1, parts):
        row = conn.execute(probe, {"cut": low + (high - low + 1) * part // parts}).fetchone()
        if row is not None and tuple(row) not in starts:
            starts.append(tuple(row))
    conn.commit()
    log.info("%s: snapshot cut into %d batch(es) from the key's range [%d, %d] and %d estimated rows",
             pipeline.source, len(starts), low, high, estimate)
    return starts
