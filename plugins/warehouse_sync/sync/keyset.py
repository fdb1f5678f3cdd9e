"""Keyset helpers: the order a window's rows are read in, and the predicate of one batch of it.

A window's rows are ordered by the keyset ``(cursor, pk...)`` (a snapshot's by ``(pk...)``); a batch
is a half-open range ``[lower, upper)`` of that order. The plan cuts batches (:mod:`.plan`), the
extract reads one page after another strictly after the last key read (:mod:`.extract`), and a
retried snapshot extract clears its batch's range from the build table (:mod:`warehouse_sync.target.build`): all
three use these two functions, so they agree on what a batch holds. Never ``OFFSET`` (see
use-the-index-luke.com/no-offset).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from warehouse_sync.config import Pipeline
from warehouse_sync.db.batches import key_range_filter
from warehouse_sync.db.statements import window_filter
from warehouse_sync.model import Batch, Window


def keyset_columns(pipeline: Pipeline, window: Window) -> tuple[str, ...]:
    """The keyset order of a window: cursor first, then the primary key columns.

    For a snapshot (``window.start is None``) the primary key alone, whose index order follows the heap:
    measured on TPC-H SF 1 orders, reading in key order takes 1.2 s against 4.5 s in (cursor, key) order.
    """
    return pipeline.primary_key if window.start is None else (pipeline.cursor, *pipeline.primary_key)


def batch_filter(pipeline: Pipeline, window: Window, batch: Batch) -> tuple[sql.Composable, dict[str, Any]]:
    """SQL predicate and parameters for the rows of one batch (window and keyset range)."""
    clause, params = window_filter(pipeline.cursor, window, zone=pipeline.cursor_time_zone)
    ranges, bounds = key_range_filter(keyset_columns(pipeline, window), batch)
    return sql.SQL(" AND ").join([clause, *ranges]), {**params, **bounds}
