"""Key check: which primary keys exist on one side only, read from the primary-key indexes alone.

A sync run compares its window in full (:mod:`.compare`); a row deleted at the source leaves no
trace in any window, so the run also compares the *set of keys* of the whole table. Per segment of
the first key column's range, each side computes the live key count and the sum of 64-bit hashes
of the primary key only (:func:`key_hash`); no other column is read,
so the primary-key index answers by an Index Only Scan (heap pages are visited only where the
visibility map is not set: pages changed since the last VACUUM). The warehouse's soft-deleted keys
are subtracted through a partial index of tombstones (built with the target by the load, or by
``sql/reconcile/tombstone_index.sql`` for older targets). Segments that differ are cut again (the
checksum bisection of reladiff, as in :mod:`.locate`, over keys instead of rows), every level one
query per side for all differing segments, down to leaves of about ``leaf_rows`` keys that are compared key by key.

Keys on the source only whose row is at or past ``as_of`` are *in flight* (inserted after the
window) and not drift; the rest are ``missing``; keys live in the warehouse only are ``extra``
(deleted at the source). The result is a :class:`~.locate.Drift` for :func:`.repair.repair`.

Counting stops at the repair ceiling (:func:`.locate.repair_ceiling`): when a level's key counts
show more keys live in the warehouse only than it allows (an emptied source: no key is read), or
the leaves, read ``LEAF_CHUNK`` ranges at a time, have given one key more; the drift is then
``truncated`` with at most the ceiling + 1 keys, and the repair refuses it.

Cost per run: one index-only pass over the key index on each side (about 8 + key bytes per row,
against every column for the daily whole-table checksum), grouped into first-level parts of about
``FIRST_LEVEL_FACTOR * leaf_rows`` keys; then those keys again for each part that differs, and
leaves of about ``leaf_rows`` keys around each differing key. A level is read in queries of at most
``LEVEL_PARTS`` parts, each compared and dropped before the next: the task's memory does not grow with
the table.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from warehouse_sync.config import Pipeline
from warehouse_sync.db.catalog import Column
from warehouse_sync.db.statements import end_value, idents, load_sql, table_ident, tombstone_index
from warehouse_sync.model import Window
from warehouse_sync.reconcile.compare import Comparison, Side
from warehouse_sync.reconcile.locate import (
    INTEGER_TYPES,
    UNBOUNDED,
    Drift,
    SnapshotSide,
    UnsupportedKey,
    count_gap,
    key_join,
    query_both,
    repair_ceiling,
)
from warehouse_sync.reconcile.segments import (
    FIRST_LEVEL_FACTOR,
    LEAF_ROWS,
    LEVEL_PARTS,
    MAX_PARTS,
    Segment,
    differing_parts,
    first_parts,
    next_level,
    split_segments,
)
from warehouse_sync.reconcile.slices import slice_ranges

log = logging.getLogger(__name__)
# Leaf ranges read per key_rows.sql query (at most about LEAF_CHUNK * leaf_rows keys per side in memory).
LEAF_CHUNK = 1024
TOMBSTONES = sql.SQL("r._deleted_at IS NOT NULL")


@dataclass
class KeyCheck:
    """What :func:`check_keys` found.

    Attributes:
        drift: Keys missing (source only, not in flight) and extra (warehouse only); never ``changed``.
        comparison: Scope ``keys``: both sides' live key count and key-hash sum, in-flight keys
            taken out of the source's, so it matches exactly when ``drift`` is empty.
        levels: Bisection levels run (1 when nothing differed).
        leaf_keys: Keys read key by key at the leaves (both sides).
        leaves: The leaf ranges ``(lo, hi)`` of the first key column compared key by key.
    """

    drift: Drift
    comparison: Comparison
    levels: int = 0
    leaf_keys: int = 0
    leaves: tuple[tuple[int, int], ...] = ()


def key_hash(pipeline: Pipeline, columns: list[Column], prefix: str = "r") -> sql.Composable:
    """A 64-bit hash of the primary key alone, each column hashed with the previous hash as seed.

    ``hashint8extended(k2, hashint8extended(k1, 0))`` for integer columns (no row value to build per row: about
    half the CPU of ``hash_record_extended(ROW(k1, k2), 0)``), ``hash_record_extended(ROW(k), seed)`` for
    columns of other types.
    """
    by_name = {c.name: c for c in columns}
    expression: sql.Composable = sql.SQL("0")
    for name in pipeline.primary_key:
        column = sql.Identifier(prefix, name)
        if by_name[name].type_name in INTEGER_TYPES:
            expression = sql.SQL("hashint8extended({}::int8, {})").format(column, expression)
        else:
            expression = sql.SQL("hash_record_extended(ROW({}), {})").format(column, expression)
    return expression


def has_integer_key(pipeline: Pipeline, columns: list[Column]) -> bool:
    """Whether the first key column is an integer, so that the key space can be cut into ranges."""
    by_name = {c.name: c for c in columns}
    return pipeline.primary_key[0] in by_name and by_name[pipeline.primary_key[0]].type_name in INTEGER_TYPES



def classify(source: dict[tuple, int], warehouse: dict[tuple, int], inflight: set[tuple]) -> tuple[list, list]:
    """Missing keys (source only, not in flight) and extra keys (warehouse only), each sorted."""
    missing = sorted(k for k in source if k not in warehouse and k not in inflight)
    extra = sorted(k for k in warehouse if k not in source)
    return missing, extra


def live_keys(rows: list[tuple]) -> dict[tuple, int]:
    """``{key: hash}`` of the live keys of ``key_rows.sql`` rows ``(*key, hash, live)``."""
    keys: dict[tuple, int] = {}
    dead = set()
    for row in rows:
        if row[-1]:
            keys[tuple(row[:-2])] = row[-2]
        else:
            dead.add(tuple(row[:-2]))
    for key in dead:
        keys.pop(key, None)
    return keys


class _KeySide(SnapshotSide):
    """A snapshot side that reads through indexes only.

    Sequential and bitmap scans would read every column of every row, and the hash aggregate may keep up to
    ``MAX_PARTS`` groups in memory. No parallel workers: the two sides already run at once, and the
    planner, which counts each of a level's ranges as a ninth of the table, started one for a slice's
    stripes (measured, one of 4 slices of SF 1 orders: 0.19 s with a worker, 0.14 s without).
    """

    def __enter__(self) -> "_KeySide":
        super().__enter__()
        for setting in ("enable_seqscan = off", "enable_bitmapscan = off", "work_mem = '64MB'",
                        "max_parallel_workers_per_gather = 0"):
            self.conn.execute(f"SET LOCAL {setting}")
        return self


def ensure_tombstone_index(warehouse: psycopg.Connection, pipeline: Pipeline) -> None:
    """Builds the target's partial index of soft-deleted keys if missing.

    For targets created before the load built it; looked up without a table lock.
    """
    name = tombstone_index(pipeline.target)
    qualified = sql.Identifier(pipeline.target.schema, name).as_string(warehouse)
    (exists,) = warehouse.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()  # type: ignore[misc]
    if not exists:
        warehouse.execute(load_sql("reconcile/tombstone_index.sql", index=sql.Identifier(name),
                                   table=table_ident(pipeline.target), primary_key=idents(pipeline.primary_key)))
    warehouse.commit()


def check_keys(source: psycopg.Connection, warehouse: psycopg.Connection, pipeline: Pipeline,
               columns: list[Column], upto: Window, leaf_rows: int = LEAF_ROWS,
               max_parts: int = MAX_PARTS, only: tuple[tuple[int, int], ...] | None = None,
               key_slice: tuple[int, int] = (0, 1), bounded: bool = True,
               level_parts: int = LEVEL_PARTS) -> KeyCheck:
    """Finds keys on one side only (deletes at the source, keys lost or not yet deleted in the warehouse).

    Args:
        source: Source connection.
        warehouse: Warehouse connection.
        pipeline: The table's configuration.
        columns: Source columns (only the key columns' types are used).
        upto: Source keys whose row is at or past its end (its ``cursor_end`` for an integer cursor) are in
            flight.
        leaf_rows: Keys per leaf compared key by key.
        max_parts: Most parts one segment is cut into per level (bounds the aggregate's groups).
        only: Compare just these leaf ranges ``(lo, hi)`` key by key, no bisection (the re-check after a
            repair: :attr:`KeyCheck.leaves` of the check that found the drift; the rest of the key
            space matched then). The comparison then covers those ranges only.
        key_slice: ``(i, n)``: compare only the keys of the ``i``-th of ``n`` slices of the first key
            column's range (:func:`.slices.key_slice_of`; its stripes: :func:`.slices.slice_ranges`);
            ``(0, 1)``, the default, is the whole range.
        bounded: Stop counting at the repair ceiling (module docstring); ``False``: find every key.
        level_parts: Most parts (rows per side) one ``key_segments.sql`` query returns: a level of more
            is read in groups (:func:`split_segments`), so the process's memory does not grow with the table.

    Returns:
        The drift (``missing`` and ``extra`` only) and a ``keys`` :class:`Comparison`.

    Raises:
        UnsupportedKey: The first key column is not an integer.
    """
    started = time.monotonic()
    k1 = pipeline.primary_key[0]
    if not has_integer_key(pipeline, columns):
        raise UnsupportedKey(f"{pipeline.source}: first key column {k1!r} is not an integer")
    ensure_tombstone_index(warehouse, pipeline)
    parts = {"k1": sql.Identifier(k1), "keys": idents(pipeline.primary_key, "r"),
             "key_hash": key_hash(pipeline, columns)}
    src = _KeySide(source, table_ident(pipeline.source), sql.SQL("false"))
    wh = _KeySide(warehouse, table_ident(pipeline.target), TOMBSTONES)
    totals = {"source": (0, 0), "warehouse": (0, 0)}
    levels = segments_compared = surplus = 0
    with ThreadPoolExecutor(max_workers=2) as pool, src, wh:
        bounds = query_both(pool, src, wh, "reconcile/key_bounds.sql", parts, {})
        lows = [b[0][0] for b in bounds if b[0][0] is not None]
        todo: list[Segment] = []
        leaves: list[tuple[int, int]] = []
        if only is not None:
            leaves = list(only)
        elif lows:
            lo, hi = min(lows), max(b[0][1] for b in bounds if b[0][1] is not None) + 1
            ranges = slice_ranges(lo, hi, key_slice)
            estimate = max(b[0][2] or 0 for b in bounds)  # keys per first-key value: estimate / (hi - lo)
            least = max(min(32, max_parts) // max(len(ranges), 1), 1)
            todo = [Segment(a, b, first_parts(estimate * (b - a) // (hi - lo), leaf_rows * FIRST_LEVEL_FACTOR,
                                              max_parts, least)) for a, b in ranges]
        while todo:
            level_surplus, again = 0, []
            for group in split_segments(todo, level_parts):  # at most level_parts rows per side in memory
                params = {"los": [s.lo for s in group], "his": [s.hi for s in group],
                          "parts": [s.parts for s in group]}
                a, b = query_both(pool, src, wh, "reconcile/key_segments.sql", parts, params)
                if not levels:  # the first level covers every key
                    totals = {"source": _add(totals["source"], _total(a)),
                              "warehouse": _add(totals["warehouse"], _total(b))}
                a_map, b_map, compared = differing_parts(a, b)
                del a, b
                segments_compared += compared
                # Keys live in the warehouse only are drift (a key in flight is one inserted at the source after as_of).
                level_surplus += count_gap(b_map, a_map)
                cut, new_leaves = next_level(group, a_map, b_map, leaf_rows, max_parts)
                again += cut
                leaves += new_leaves
            levels += 1
            surplus = max(surplus, level_surplus)
            if bounded and surplus > repair_ceiling(pipeline, totals["source"][0]):
                break
            todo = again
        # The re-check after a repair has no first level to count the table: the fraction does not apply.
        limit = pipeline.repair_max_rows if only is not None else repair_ceiling(pipeline, totals["source"][0])
        limit = limit if bounded else UNBOUNDED
        if surplus > limit:
            leaves = []  # more keys live in the warehouse only than the ceiling: none need reading
        found = _read_leaves(pool, src, wh, parts, pipeline, columns, leaves,
                             end_value(upto, pipeline.cursor_time_zone), limit)
    if only is not None:
        totals = {"source": found.source, "warehouse": found.warehouse}
    drift = Drift(missing=sorted(found.missing), extra=sorted(found.extra), segments=segments_compared,
                  rows=totals["source"][0], seconds=time.monotonic() - started)
    drift.stop_at(limit, surplus)
    source_side = Side(totals["source"][0] - found.inflight[0], totals["source"][1] - found.inflight[1])
    comparison = Comparison("keys", upto.up_to_end(), source_side, Side(*totals["warehouse"]), found.inflight[0],
                            seconds=drift.seconds)
    log.info("%s vs %s keys as of %s, key slice %d of %d: %d missing, %d extra, %d in flight (%d levels, "
             "%d segments, %d leaf keys, %.2f s)%s", pipeline.source, pipeline.target, upto.end, key_slice[0] + 1,
             key_slice[1], len(drift.missing), len(drift.extra),
             found.inflight[0], levels, segments_compared, found.leaf_keys, drift.seconds,
             f"; stopped at the repair ceiling, at least {drift.at_least} keys differ" if drift.truncated else "")
    return KeyCheck(drift, comparison, levels, found.leaf_keys, tuple(leaves))


@dataclass
class _Leaves:
    """What the leaf ranges held: keys on one side only, in-flight keys, and each side's (count, hash sum)."""

    missing: list[tuple] = field(default_factory=list)
    extra: list[tuple] = field(default_factory=list)
    inflight: tuple[int, int] = (0, 0)
    source: tuple[int, int] = (0, 0)
    warehouse: tuple[int, int] = (0, 0)
    leaf_keys: int = 0


def _read_leaves(pool: ThreadPoolExecutor, src: SnapshotSide, wh: SnapshotSide, parts: dict[str, sql.Composable],
                 pipeline: Pipeline, columns: list[Column], leaves: list[tuple[int, int]], as_of: Any,
                 limit: int) -> _Leaves:
    """Reads the leaf ranges key by key, ``LEAF_CHUNK`` at a time, until more than ``limit`` keys differ.

    Returns:
        The keys found, in the ranges read.
    """
    found = _Leaves()
    for at in range(0, len(leaves), LEAF_CHUNK):
        chunk = leaves[at:at + LEAF_CHUNK]
        params = {"los": [lo for lo, _ in chunk], "his": [hi for _, hi in chunk]}
        a, b = query_both(pool, src, wh, "reconcile/key_rows.sql", parts, params)
        source_keys, warehouse_keys = live_keys(a), live_keys(b)
        inflight = _inflight(src, pipeline, columns, [k for k in source_keys if k not in warehouse_keys], as_of)
        missing, extra = classify(source_keys, warehouse_keys, inflight)
        found.missing += missing
        found.extra += extra
        found.inflight = (found.inflight[0] + len(inflight),
                          found.inflight[1] + sum(source_keys[k] for k in inflight))
        found.source = (found.source[0] + len(source_keys), found.source[1] + sum(source_keys.values()))
        found.warehouse = (found.warehouse[0] + len(warehouse_keys),
                           found.warehouse[1] + sum(warehouse_keys.values()))
        found.leaf_keys += len(source_keys) + len(warehouse_keys)
        if len(found.missing) + len(found.extra) > limit:
            break
    return found


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """Two (key count, key-hash sum) pairs added."""
    return a[0] + b[0], a[1] + b[1]


def _total(rows: list[tuple]) -> tuple[int, int]:
    """Key count and key-hash sum of one level's ``key_segments.sql`` rows ``(i, part, count, hash)``."""
    return int(sum(r[2] for r in rows)), int(sum(r[3] for r in rows))


def _inflight(src: SnapshotSide, pipeline: Pipeline, columns: list[Column], keys: list[tuple],
              as_of: Any) -> set[tuple]:
    """Of ``keys`` (on the source only), those whose source row is at or past ``as_of`` (a cursor value)."""
    if not keys:
        return set()
    joined = key_join(pipeline, columns, keys)
    statement = load_sql("reconcile/key_inflight.sql", key_columns=idents(pipeline.primary_key, "r"),
                         table=src.table, cursor=sql.Identifier(pipeline.cursor), **joined["parts"])
    return {tuple(r) for r in src.conn.execute(statement, {**joined["params"], "as_of": as_of}).fetchall()}
