"""Key check slices: which part of the key range a sync run's key check compares.

The per-run key check (:mod:`.keys`) reads both primary-key indexes; on a large table that is the
run's largest cost and grows with the table. ``key_check_slices: N`` cuts the first key column's
range into ``N`` equal slices and each scheduled window compares one of them in turn, so a run reads
about 1/N of both key indexes and a key deleted at the source is found within ``N`` schedule
intervals. The daily reconcile still compares every key, so no delete waits longer than a day.

``key_check_slices: auto`` (the default) picks ``N`` from the table's size: one slice (every key,
every run) up to ``key_check_slice_keys`` keys (4 000 000 by default), then the smallest power of
two that keeps a slice within that many keys, but never more slices than scheduled windows in a day.
A run's key check then reads at most ``key_check_slice_keys`` keys up to ``key_check_slice_keys x
windows per day`` rows (48 M on the two-hourly schedule) and a delete is found within ``N`` windows,
at most one day. Powers of two keep ``N`` from moving back and forth when the planner's row estimate
hovers near a boundary.

A slice is not one contiguous part of the key range, whose bounds would move whenever the range's
ends do (new keys at the top, old ones deleted at the bottom: every OLTP table), so that ``N``
consecutive windows could leave a gap between two slices and a delete in it unfound. The range is cut
into *stripes* of ``w`` first-key values, ``w`` a power of two (about 16 to 32 stripes per slice:
:func:`stripe_width`); stripe ``j`` (keys ``[j*w, (j+1)*w)``) belongs to slice ``j mod N``
(:func:`slice_ranges`). A stripe's slice depends on ``w`` and ``N`` only, not on where the range
begins or ends, and both change only when the key range doubles or halves or the table's size moves
``N``: between such changes any ``N`` consecutive windows compare every key. Near a width boundary,
where a range that hovers (keys added at the top as fast as old ones are deleted at the bottom)
would flip the width from window to window, a slice is read under both widths (:func:`stripe_widths`).
Only a jump of the range across the whole band between two windows, or a change of ``N``, can skip
a key for one round; the daily reconcile keeps the one-day bound. Round-robin stripes also keep the
slices even (within one stripe).
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from warehouse_sync.db.catalog import row_estimate

if TYPE_CHECKING:
    import psycopg

    from warehouse_sync.config import Pipeline

log = logging.getLogger(__name__)

AUTO = "auto"
AUTO_SLICE_KEYS = 4_000_000
DAY_SECONDS = 86_400.0
STRIPES_PER_SLICE = 16
BAND = 1.15  # stripe_widths: within 15 % above a power-of-two boundary (13 % below it) both widths are read


def interval_seconds(schedule: str, window_end: datetime) -> float:
    """Seconds between ``window_end`` and the schedule's tick before it (at least 1).

    Args:
        schedule: A five-field cron expression or a preset croniter knows (``@hourly``).
        window_end: A tick of the schedule (UTC).
    """
    from croniter import croniter

    previous = croniter(schedule, window_end).get_prev(datetime)
    return max((window_end - previous).total_seconds(), 1.0)


def windows_per_day(schedule: str, window_end: datetime) -> int:
    """How many windows of ``schedule`` one day holds, at least 1 (12 for ``0 */2 * * *``)."""
    return max(int(DAY_SECONDS // interval_seconds(schedule, last_tick(schedule, window_end))), 1)


def slice_count(setting: int | str, table_rows: float | None, schedule: str, window_end: datetime,
                slice_keys: int = AUTO_SLICE_KEYS) -> int:
    """How many slices the key check rotates through for this window.

    Args:
        setting: The pipeline's ``key_check_slices``: a count (>= 1) or ``"auto"``.
        table_rows: The source table's planner estimate (``pg_class.reltuples``, rows); ``None`` or
            negative (never analyzed) counts as small.
        schedule: The sync schedule (cron expression or preset).
        window_end: The window's end (UTC); a manual run's may fall between two ticks.
        slice_keys: For ``"auto"``: the most keys one slice should hold.

    Returns:
        ``N`` >= 1; for ``"auto"``, ``min(2 ** ceil(log2(rows / slice_keys)), windows per day)``, 1 for
        a table of at most ``slice_keys`` rows.
    """
    if setting != AUTO:
        return max(int(setting), 1)
    rows = table_rows or 0.0
    if rows <= slice_keys:
        return 1
    wanted = 2 ** math.ceil(math.log2(rows / slice_keys))
    return max(min(wanted, windows_per_day(schedule, window_end)), 1)


def last_tick(schedule: str, at: datetime) -> datetime:
    """The schedule's latest tick at or before ``at`` (``at`` itself when it is a tick)."""
    from croniter import croniter

    following = croniter(schedule, at - timedelta(seconds=1)).get_next(datetime)
    return at if following == at else croniter(schedule, at).get_prev(datetime)


def key_slice_of(window_end: datetime, schedule: str, slices: int) -> tuple[int, int]:
    """Which slice of the key range a run's key check compares: ``(i, slices)``.

    ``i`` counts the schedule's intervals since the epoch up to the last tick at or before
    ``window_end`` (UTC), modulo ``slices``: consecutive scheduled windows take consecutive slices, so
    ``slices`` windows in a row cover the whole key range, a retried or re-run window checks the same
    slice again, and a manual run ending between two ticks checks the slice of the tick before it.
    """
    if slices <= 1:
        return (0, 1)
    tick = last_tick(schedule, window_end)
    return (int(tick.timestamp() // interval_seconds(schedule, tick)) % slices, slices)


def stripe_width(span: int, slices: int, stripes: int = STRIPES_PER_SLICE) -> int:
    """Width (first-key values) of one stripe: the largest power of two <= ``span / (slices * stripes)``, at least 1.

    Args:
        span: The first key column's range ``hi - lo`` (values).
        slices: ``N``.
        stripes: Stripes per slice wanted at least (a slice gets ``stripes`` to about twice as many).
    """
    share = span // max(slices * stripes, 1)
    return 1 << (share.bit_length() - 1) if share >= 1 else 1


def stripe_widths(span: int, slices: int, stripes: int = STRIPES_PER_SLICE) -> tuple[int, ...]:
    """The stripe widths a slice is read under: :func:`stripe_width`, and its neighbour near a boundary.

    When ``span / (slices * stripes)`` lies within ``BAND`` of a power of two, a window's width
    could be either one depending on a few keys inserted or deleted, and a width that flips between
    windows would move keys between slices. So both are read there (a slice's keys under either
    width: up to about twice its share): whichever width a window picks, every key's slice under
    both is compared in the round.
    """
    width = stripe_width(span, slices, stripes)
    share = span / max(slices * stripes, 1)
    if width > 1 and share < width * BAND:
        return (width, width // 2)
    if share >= 2 * width / BAND:
        return (width, width * 2)
    return (width,)


def slice_ranges(lo: int, hi: int, key_slice: tuple[int, int],
                 stripes: int = STRIPES_PER_SLICE) -> list[tuple[int, int]]:
    """The half-open ranges of the first key column that key slice ``(i, n)`` compares within ``[lo, hi)``.

    Stripe ``j`` (values ``[j*w, (j+1)*w)``, ``w`` = :func:`stripe_width`) belongs to slice ``j mod n``
    (module docstring), so the ``n`` slices of one ``[lo, hi)`` cover it exactly once, and a key stays
    in its slice while ``w`` does. Near a width boundary the slice is read under both widths
    (:func:`stripe_widths`), and the slices then overlap.

    Args:
        lo: The lowest first-key value of either side.
        hi: One past the highest.
        key_slice: ``(i, n)``, ``0 <= i < n`` (:func:`key_slice_of`); ``(0, 1)`` is ``[(lo, hi)]``.
        stripes: Stripes per slice wanted at least.

    Returns:
        Disjoint ranges ``(a, b)`` in key order (none when ``hi <= lo``).
    """
    index, slices = key_slice
    if hi <= lo:
        return []
    if slices <= 1:
        return [(lo, hi)]
    ranges: list[tuple[int, int]] = []
    for width in stripe_widths(hi - lo, slices, stripes):
        first = lo // width
        ranges += [(max(j * width, lo), min((j + 1) * width, hi))
                   for j in range(first + (index - first) % slices, (hi - 1) // width + 1, slices)]
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def slice_of_key(key: int, lo: int, hi: int, slices: int, stripes: int = STRIPES_PER_SLICE) -> int:
    """The slice (``0 <= i < slices``) whose :func:`slice_ranges` within ``[lo, hi)`` hold ``key``."""
    return (key // stripe_width(hi - lo, slices, stripes)) % slices if slices > 1 else 0


def found_within(slices: int, schedule: str, window_end: datetime) -> timedelta:
    """The longest a key deleted at the source waits for the key check: ``slices`` windows, at most a day."""
    interval = interval_seconds(schedule, last_tick(schedule, window_end))
    return min(timedelta(seconds=slices * interval), timedelta(days=1))


def run_key_slice(source: psycopg.Connection, pipeline: Pipeline, window_end: datetime) -> tuple[int, int]:
    """The slice ``(i, n)`` the key check of the window ending at ``window_end`` compares.

    ``n`` from the pipeline's ``key_check_slices`` (``auto``: from the source's row estimate,
    :func:`slice_count`), ``i`` by :func:`key_slice_of`; logs the bound a delete waits within.
    """
    slices = slice_count(pipeline.key_check_slices, row_estimate(source, pipeline.source), pipeline.schedule,
                         window_end, pipeline.key_check_slice_keys)
    index, slices = key_slice_of(window_end, pipeline.schedule, slices)
    if slices > 1:
        log.info("%s: key check slice %d of %d (key_check_slices: %s); a delete at the source is found within %s",
                 pipeline.source, index + 1, slices, pipeline.key_check_slices,
                 found_within(slices, pipeline.schedule, window_end))
    return index, slices
