"""Locate drift: which keys are missing, extra or changed in the warehouse, and which columns differ.

The algorithm is the checksum bisection of data-diff / reladiff ("Technical explanation",
github.com/erezsh/reladiff): cut the key space into segments; in each database compute, per
segment, a row count and an order-independent checksum (sum of 64-bit row hashes; reladiff sums
md5 prefixes of the row text, we use PostgreSQL's ``hash_record_extended``, 3x cheaper per row);
segments whose numbers differ are cut again, until a segment is small enough (``leaf_rows``) to
compare key by key. Both databases are queried concurrently, each inside one snapshot, and every
level is one ``GROUP BY`` scan of the differing ranges.

Segments are ranges of the first primary-key column, which must be an integer (TPC-H and most
OLTP tables); a composite key is compared on all its columns at the leaves.

Counting stops at the pipeline's repair ceiling (:func:`repair_ceiling`): once the first level's
row counts alone show more differing keys than it allows, or the leaves have given one key more,
nothing more is read or kept, and the drift is ``truncated`` (the repair refuses it). An emptied
source against a 100 M-row target costs one level of counts, not 100 M keys in memory.

Rows whose cursor is at or past ``as_of`` are *in flight* (changed after the window being checked)
and are neither counted nor reported; a warehouse row whose source version is in flight is not
"extra". Warehouse rows with ``_deleted_at`` set count as absent.
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
from warehouse_sync.db.catalog import Column, hash_inputs
from warehouse_sync.db.statements import end_value, idents, load_sql, table_ident
from warehouse_sync.model import Window

log = logging.getLogger(__name__)
INTEGER_TYPES = {"int2", "int4", "int8"}
LIVE = sql.SQL("AND r._deleted_at IS NULL")
UNBOUNDED = 1 << 62  # a ceiling no drift reaches


class UnsupportedKey(ValueError):
    """The first primary-key column is not an integer, so the key space cannot be segmented."""


def repair_ceiling(pipeline: Pipeline, rows: int) -> int:
    """The most keys a repair may write: ``repair_max_rows``, and ``repair_max_fraction`` of ``rows`` (at least 1).

    Args:
        pipeline: The table's configuration.
        rows: Rows compared (the larger side, or the source's keys for the key check).
    """
    return min(pipeline.repair_max_rows, max(1, int(pipeline.repair_max_fraction * max(rows, 1))))


def count_gap(more: dict[Any, tuple[int, int]], fewer: dict[Any, tuple[int, int]]) -> int:
    """Fewest keys on ``more``'s side only: per part, how many more rows it counts than ``fewer``.

    Only the direction in-flight rows cannot explain is a lower bound of drift (a row changed at the
    source after ``as_of`` leaves the warehouse with one row more, which is not drift).

    Args:
        more: ``{part: (row count, checksum)}`` of one side.
        fewer: The same of the other side.
    """
    return sum(max(0, n - fewer.get(p, (0, 0))[0]) for p, (n, _) in more.items())


@dataclass
class Drift:
    """What :func:`locate` found.

    Attributes:
        missing: Keys (tuples, key order) in the source but not in the warehouse.
        extra: Keys live in the warehouse but gone from the source (deleted at source).
        changed: Keys present on both sides with different values.
        changed_columns: For up to ``sample`` changed keys, the names of the differing columns.
        segments: Segments compared (all levels).
        rows: Rows compared (the larger side, rows in flight excluded).
        seconds: Wall time.
        truncated: Counting stopped at the repair ceiling: more keys differ than the lists hold
            (together at most the ceiling + 1).
        at_least: When ``truncated``: the fewest keys known to differ (from counts or keys found).
    """

    missing: list[tuple] = field(default_factory=list)
    extra: list[tuple] = field(default_factory=list)
    changed: list[tuple] = field(default_factory=list)
    changed_columns: dict[tuple, list[str]] = field(default_factory=dict)
    segments: int = 0
    rows: int = 0
    seconds: float = 0.0
    truncated: bool = False
    at_least: int = 0

    @property
    def total(self) -> int:
        """How many keys are missing, extra or changed, together."""
        return len(self.missing) + len(self.extra) + len(self.changed)

    def stop_at(self, limit: int, at_least: int = 0) -> bool:
        """Marks the drift truncated and keeps at most ``limit + 1`` keys when more than ``limit`` differ.

        Args:
            limit: The repair ceiling.
            at_least: Keys known to differ besides those listed (e.g. from row counts).

        Returns:
            Whether counting should stop.
        """
        known = max(at_least, self.total)
        if known <= limit:
            return False
        keep = limit + 1
        self.missing = self.missing[:keep]
        self.extra = self.extra[:max(0, keep - len(self.missing))]
        self.changed = self.changed[:max(0, keep - len(self.missing) - len(self.extra))]
        self.truncated, self.at_least = True, max(self.at_least, known)
        return True

    def summary(self, sample: int = 5) -> dict[str, Any]:
        """Counts and a sample of keys per kind (JSON-friendly)."""
        return {
            "missing": len(self.missing), "extra": len(self.extra), "changed": len(self.changed),
            "segments": self.segments, "seconds": round(self.seconds, 3),
            "truncated": self.truncated, "at_least": max(self.at_least, self.total),
            "sample_missing": [list(k) for k in self.missing[:sample]],
            "sample_extra": [list(k) for k in self.extra[:sample]],
            "sample_changed": {str(list(k)): cols for k, cols in list(self.changed_columns.items())[:sample]},
        }


class SnapshotSide:
    """One database, its table and filter, inside one read-only REPEATABLE READ snapshot.

    A context manager; :meth:`query` runs a statement of ``sql/`` with ``{table}`` and ``{extra}`` filled in.
    """

    def __init__(self, conn: psycopg.Connection, table: sql.Composable, extra: sql.Composable):
        self.conn, self.table, self.extra = conn, table, extra
        self.table_name = table.as_string(conn)  # for to_regclass() in key_range.sql

    def __enter__(self) -> "SnapshotSide":
        self.conn.commit()
        self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self.conn.execute("SET TRANSACTION READ ONLY")
        # The planner cannot know that the segment expression has few values; with sorting allowed it
        # picks an external sort of every row instead of a small hash aggregate.
        self.conn.execute("SET LOCAL enable_sort = off")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.conn.rollback()
        self.conn.isolation_level = None

    def query(self, name: str, parts: dict[str, sql.Composable], params: dict[str, Any]) -> list[tuple]:
        """Every row of the ``sql/`` statement ``name``, with ``parts``, ``{table}`` and ``{extra}`` filled in."""
        statement = load_sql(name, table=self.table, extra=self.extra, **parts)
        return self.conn.execute(statement, {"table_name": self.table_name, **params}).fetchall()


def query_both(pool: ThreadPoolExecutor, a: SnapshotSide, b: SnapshotSide, name: str,
               parts: dict[str, sql.Composable], params: dict[str, Any]) -> tuple[list[tuple], list[tuple]]:
    """Runs the same statement on both sides concurrently; returns both sides' rows."""
    fa = pool.submit(a.query, name, parts, params)
    fb = pool.submit(b.query, name, parts, params)
    return fa.result(), fb.result()


def locate(
    source: psycopg.Connection,
    warehouse: psycopg.Connection,
    pipeline: Pipeline,
    columns: list[Column],
    upto: Window,
    factor: int = 32,
    leaf_rows: int = 2000,
    sample: int = 20,
    bounded: bool = True,
) -> Drift:
    """Finds the keys that differ between source and warehouse, for rows with cursor before ``upto``'s end.

    Every key, unless more than the repair ceiling differ: then at most the ceiling + 1, ``truncated``.

    Args:
        source: Source connection.
        warehouse: Warehouse connection.
        pipeline: The table's configuration.
        columns: Source columns (all are compared).
        upto: Rows at or past its end (its ``cursor_end`` for an integer cursor) are in flight.
        factor: Segments each differing segment is cut into.
        leaf_rows: Segments with at most this many rows are compared key by key.
        sample: Changed keys whose differing columns are named.
        bounded: Stop counting at the repair ceiling (module docstring); ``False``: find every key.

    Returns:
        Keys missing, extra and changed (each a list of key tuples), and a sample of changed columns.

    Raises:
        UnsupportedKey: The first key column is not an integer.
    """
    started = time.monotonic()
    by_name = {c.name: c for c in columns}
    k1 = pipeline.primary_key[0]
    if by_name[k1].type_name not in INTEGER_TYPES:
        raise UnsupportedKey(f"{pipeline.source}: first key column {k1!r} is {by_name[k1].sql_type}, not an integer")
    parts = {"k1": sql.Identifier(k1), "cursor": sql.Identifier(pipeline.cursor), "columns": hash_inputs(columns),
             "keys": idents(pipeline.primary_key, "r")}
    result = Drift()
    cursor_as_of = end_value(upto, pipeline.cursor_time_zone)
    src = SnapshotSide(source, table_ident(pipeline.source), sql.SQL(""))
    wh = SnapshotSide(warehouse, table_ident(pipeline.target), LIVE)
    with ThreadPoolExecutor(max_workers=2) as pool, src, wh:
        ranges = query_both(pool, src, wh, "reconcile/key_range.sql", parts, {"as_of": cursor_as_of})
        lows = [r[0][0] for r in ranges if r[0][0] is not None]
        if lows:
            lo, hi = min(lows), max(r[0][1] for r in ranges if r[0][1] is not None) + 1
            estimate = max(r[0][2] or 0 for r in ranges)
            todo = [(lo, hi, max(factor, -(-estimate // leaf_rows)))]
            first = True
            limit = pipeline.repair_max_rows if bounded else UNBOUNDED
            while todo:
                lo, hi, parts_count = todo.pop()
                params = {"lo": lo, "hi": hi, "parts": parts_count, "as_of": cursor_as_of}
                a, b = query_both(pool, src, wh, "reconcile/diff_segments.sql", parts, params)
                a_map, b_map = {p: (n, s) for p, n, s in a}, {p: (n, s) for p, n, s in b}
                if first:  # the first level covers every row: exact counts
                    result.rows = max(sum(r[1] for r in a), sum(r[1] for r in b))
                    first = False
                    limit = repair_ceiling(pipeline, result.rows) if bounded else UNBOUNDED
                    if result.stop_at(limit, count_gap(a_map, b_map)):  # source rows the warehouse lacks
                        break
                for part in sorted(set(a_map) | set(b_map)):
                    result.segments += 1
                    if a_map.get(part) == b_map.get(part):
                        continue
                    # keys k with floor((k - lo) * parts / width) == part, i.e. [lo + ceil(part * width / parts), …)
                    seg_lo = lo - (-part * (hi - lo) // parts_count)
                    seg_hi = lo - (-(part + 1) * (hi - lo) // parts_count)
                    size = max(a_map.get(part, (0, 0))[0], b_map.get(part, (0, 0))[0])
                    if size <= leaf_rows or seg_hi - seg_lo <= factor:
                        _compare_leaf(pool, src, wh, parts, seg_lo, seg_hi, cursor_as_of, result)
                        if result.total > limit:
                            _classify_extra(src, pipeline, columns, result)  # in-flight keys are not drift
                        if result.stop_at(limit):
                            todo.clear()
                            break
                    else:
                        todo.append((seg_lo, seg_hi, factor))
        _classify_extra(src, pipeline, columns, result)
        _name_changed_columns(src, wh, pipeline, columns, result, sample)
    result.missing.sort()
    result.extra.sort()
    result.changed.sort()
    result.seconds = time.monotonic() - started
    log.info("%s vs %s as of %s: %d missing, %d extra, %d changed (%d segments, %.2f s)%s", pipeline.source,
             pipeline.target, upto.end, len(result.missing), len(result.extra), len(result.changed),
             result.segments, result.seconds,
             f"; stopped at the repair ceiling, at least {result.at_least} keys differ" if result.truncated else "")
    return result


def _compare_leaf(pool: ThreadPoolExecutor, src: SnapshotSide, wh: SnapshotSide,
                  parts: dict[str, sql.Composable],
                  lo: int, hi: int, as_of: Any, result: Drift) -> None:
    a, b = query_both(pool, src, wh, "reconcile/diff_rows.sql", parts, {"lo": lo, "hi": hi, "as_of": as_of})
    a_map = {tuple(r[:-1]): r[-1] for r in a}
    b_map = {tuple(r[:-1]): r[-1] for r in b}
    for key, digest in a_map.items():
        if key not in b_map:
            result.missing.append(key)
        elif b_map[key] != digest:
            result.changed.append(key)
    result.extra.extend(key for key in b_map if key not in a_map)


def key_join(pipeline: Pipeline, columns: list[Column], keys: list[tuple]) -> dict[str, Any]:
    """SQL parts and parameters to join table alias ``r`` to a list of keys (``unnest`` of typed arrays).

    Returns:
        ``{"parts": {"arrays", "key_names", "join"}, "params": {"k0": [...], ...}}``; column types
        come from the catalog (``format_type``), identifiers are quoted.
    """
    by_name = {c.name: c for c in columns}
    arrays = sql.SQL(", ").join(
        sql.SQL("{}::{}[]").format(sql.Placeholder(f"k{i}"), sql.SQL(by_name[k].sql_type))
        for i, k in enumerate(pipeline.primary_key)
    )
    join = sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier("r", k), sql.Identifier("k", k)) for k in pipeline.primary_key
    )
    params = {f"k{i}": [key[i] for key in keys] for i in range(len(pipeline.primary_key))}
    return {"parts": {"arrays": arrays, "key_names": idents(pipeline.primary_key), "join": join}, "params": params}


def _fetch_by_keys(side: SnapshotSide, pipeline: Pipeline, columns: list[Column], keys: list[tuple],
                   select: list[str]) -> dict[tuple, tuple]:
    """Rows (as text) of ``side`` for ``keys``: {key: (selected column values...)}."""
    if not keys:
        return {}
    joined = key_join(pipeline, columns, keys)
    selected = sql.SQL(", ").join(
        [sql.Identifier("r", k) for k in pipeline.primary_key]
        + [sql.SQL("{}::text").format(sql.Identifier("r", n)) for n in select]
    )
    statement = load_sql("reconcile/rows_by_key.sql", columns=selected, table=side.table, **joined["parts"])
    width = len(pipeline.primary_key)
    return {tuple(r[:width]): tuple(r[width:]) for r in side.conn.execute(statement, joined["params"]).fetchall()}


def _classify_extra(src: SnapshotSide, pipeline: Pipeline, columns: list[Column], result: Drift) -> None:
    """Drops 'extra' keys that still exist at the source: their version there is in flight."""
    present = _fetch_by_keys(src, pipeline, columns, result.extra, [pipeline.cursor])
    result.extra = [k for k in result.extra if k not in present]


def _name_changed_columns(src: SnapshotSide, wh: SnapshotSide, pipeline: Pipeline, columns: list[Column],
                          result: Drift,
                          sample: int) -> None:
    keys = result.changed[:sample]
    names = [c.name for c in columns]
    a = _fetch_by_keys(src, pipeline, columns, keys, names)
    b = _fetch_by_keys(wh, pipeline, columns, keys, names)
    for key in keys:
        if key in a and key in b:
            result.changed_columns[key] = [n for n, x, y in zip(names, a[key], b[key]) if x != y]
