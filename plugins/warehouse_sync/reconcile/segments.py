"""Key range segments: how the key check cuts the first key column's range, level by level (pure).

A :class:`Segment` is a half-open range ``[lo, hi)`` of the first key column cut into ``parts`` equal
parts; ``sql/reconcile/key_segments.sql`` returns each part's live key count and key-hash sum per side.
The first level cuts the range (or a key check slice's stripes, :mod:`.slices`) into parts of about
``FIRST_LEVEL_FACTOR * LEAF_ROWS`` keys (:func:`first_parts`); the parts that differ
(:func:`differing_parts`) are cut again or become leaves compared key by key (:func:`next_level`),
the checksum bisection of reladiff over keys instead of rows. A level of many parts is read in
groups of at most ``LEVEL_PARTS`` (:func:`split_segments`). The database side is :mod:`.keys`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LEAF_ROWS", "MAX_PARTS", "FIRST_LEVEL_FACTOR", "LEVEL_PARTS", "Segment", "first_parts",
           "segment_bounds", "next_level", "split_segments", "differing_parts"]

LEAF_ROWS = 32
MAX_PARTS = 1 << 17
# The first level's parts hold about FIRST_LEVEL_FACTOR leaves' worth of keys (128), and a second level
# cuts the parts that differ into leaves. Orders at SF 1, median of 4 (2 shared cores): 4x fewer groups in
# the whole-index aggregate and rows to send and compare make the check 0.92 -> 0.62 s with 1 500 deletes
# in one key range, 1.00 -> 0.67 s with none, and no slower (1.05 s) with 1 500 deletes spread one per
# 1 000 keys, where the second level re-reads a quarter of the keys; 8x was slower in that case (1.20 s).
FIRST_LEVEL_FACTOR = 4
# Parts one key_segments.sql query returns per side at most: a level of more parts (the first level of a
# big table: up to MAX_PARTS) is read in groups, each compared and dropped before the next, so the rows in
# the task's process do not grow with the table. TPC-H lineitem at SF 10 (60 M keys, 131 072 first-level
# parts): the incremental reconcile's peak RSS 279 MiB with one query, against 222 MiB at SF 1.
LEVEL_PARTS = 16384


@dataclass(frozen=True)
class Segment:
    """A half-open range ``[lo, hi)`` of the first key column, to be cut into ``parts`` parts."""

    lo: int
    hi: int
    parts: int


def first_parts(estimate: int, part_rows: int = LEAF_ROWS * FIRST_LEVEL_FACTOR, max_parts: int = MAX_PARTS,
                minimum: int = 32) -> int:
    """Parts the first level cuts the key range into: about ``part_rows`` keys each, within bounds."""
    return max(minimum, min(max_parts, -(-max(estimate, 0) // part_rows)))


def segment_bounds(segment: Segment, part: int) -> tuple[int, int]:
    """The keys ``k`` with ``(k - lo) * parts // (hi - lo) == part``, as a half-open range ``[a, b)``."""
    width = segment.hi - segment.lo
    return (segment.lo - (-part * width // segment.parts), segment.lo - (-(part + 1) * width // segment.parts))


def next_level(segments: list[Segment], source: dict[tuple[int, int], tuple[int, int]],
               warehouse: dict[tuple[int, int], tuple[int, int]], leaf_rows: int = LEAF_ROWS,
               max_parts: int = MAX_PARTS) -> tuple[list[Segment], list[tuple[int, int]]]:
    """Splits the differing parts of one level into segments to cut again and leaves to list.

    Args:
        segments: The level's segments (``i`` in the maps is the 1-based index into it).
        source: ``{(i, part): (key count, key-hash sum)}`` on the source.
        warehouse: The same on the warehouse (live keys).
        leaf_rows: Parts with at most this many keys (on the larger side) become leaves.
        max_parts: Most parts one segment is cut into.

    Returns:
        (segments of the next level, leaf ranges ``(lo, hi)``), both in key order.
    """
    again, leaves = [], []
    for i, part in sorted(set(source) | set(warehouse)):
        a, b = source.get((i, part), (0, 0)), warehouse.get((i, part), (0, 0))
        if a == b:
            continue
        lo, hi = segment_bounds(segments[i - 1], part)
        size = max(a[0], b[0])
        if size <= leaf_rows or hi - lo <= 2:
            leaves.append((lo, hi))
        else:
            again.append(Segment(lo, hi, min(max_parts, hi - lo, max(2, -(-size // leaf_rows)))))
    return again, leaves


def split_segments(segments: list[Segment], most: int = LEVEL_PARTS) -> list[list[Segment]]:
    """Groups one level's segments into queries of at most ``most`` parts, cutting a bigger segment.

    A segment of more than ``most`` parts becomes consecutive sub-ranges of at most ``most`` parts each,
    cut at its own part boundaries (:func:`segment_bounds`), so together they cover the same keys.

    Returns:
        The groups, in key order; each is the ``segments`` list of one ``key_segments.sql`` query.
    """
    groups: list[list[Segment]] = [[]]
    size = 0
    for segment in segments:
        pieces = [segment] if segment.parts <= most else [
            Segment(segment_bounds(segment, at)[0], segment_bounds(segment, min(at + most, segment.parts) - 1)[1],
                    min(most, segment.parts - at))
            for at in range(0, segment.parts, most)]
        for piece in pieces:
            if size and size + piece.parts > most:
                groups.append([])
                size = 0
            groups[-1].append(piece)
            size += piece.parts
    return [group for group in groups if group]


def differing_parts(source: list[tuple], warehouse: list[tuple]) -> tuple[
        dict[tuple[int, int], tuple[int, int]], dict[tuple[int, int], tuple[int, int]], int]:
    """The parts of one level whose key count or key-hash sum differ between the sides.

    A set difference of the rows drops the parts equal on both sides (nearly all of them: the first
    level of orders at SF 1 has about 47 000 parts per side) before any per-part Python work.

    Args:
        source: The source's ``key_segments.sql`` rows ``(i, part, key count, key-hash sum)``.
        warehouse: The warehouse's rows, the same way.

    Returns:
        ``(source map, warehouse map, parts compared)``: the maps ``{(i, part): (count, hash)}`` hold
        only the differing parts (what :func:`next_level` takes); parts compared counts every part
        either side returned.
    """
    a, b = set(source), set(warehouse)
    only_a, only_b = a - b, b - a
    a_map = {(i, p): (int(n), int(h)) for i, p, n, h in only_a}
    b_map = {(i, p): (int(n), int(h)) for i, p, n, h in only_b}
    return a_map, b_map, len(a) - len(only_a) + len(set(a_map) | set(b_map))
