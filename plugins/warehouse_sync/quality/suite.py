"""The expectation suite of one run: what every table gets, what its config adds, the volume band.

Pure functions, no database and no Great Expectations import: the suite is a list of
:class:`~warehouse_sync.config.Expectation` values that :mod:`.validate` hands to GX.

* **Standard** (``fail``): every primary-key column not null; the key unique among live rows (recorded
  as enforced by the target's primary-key constraint when it has one: :mod:`.validate`).
* **Configured**: the pipeline's ``expectations`` from ``include/pipelines.yaml``.
* **Volume band** (``warn``): the window's row count within ``volume_tolerance`` of the median of
  the recent windows, judged once 3 exist.
"""

from __future__ import annotations

from warehouse_sync.config import Expectation, Pipeline

MIN_HISTORY = 3


def standard_expectations(primary_key: tuple[str, ...]) -> tuple[Expectation, ...]:
    """Key columns not null and the key unique among live rows, both ``fail``.

    Args:
        primary_key: Key columns in key order (one or more).

    Returns:
        One ``column_values_to_not_be_null`` per key column, then one uniqueness expectation
        (``compound_columns_to_be_unique`` for a composite key).
    """
    not_null = tuple(Expectation("column_values_to_not_be_null", (("column", k),), "fail", f"primary key {k} is set")
                     for k in primary_key)
    if len(primary_key) == 1:
        unique = Expectation("column_values_to_be_unique", (("column", primary_key[0]),), "fail",
                             "primary key is unique")
    else:
        unique = Expectation("compound_columns_to_be_unique", (("column_list", tuple(primary_key)),), "fail",
                             "primary key is unique")
    return (*not_null, unique)


def volume_expectation(history: list[int], tolerance: float) -> Expectation:
    """The volume band: the window's row count within ``tolerance`` of the median of ``history``.

    Args:
        history: Row counts of recent windows (rows, newest first); fewer than 3 gives an open band
            (the count is recorded, nothing is judged yet).
        tolerance: Relative half-width of the band (0.5 = 50 % below to 50 % above the median).

    Returns:
        A ``table_row_count_to_be_between`` expectation with severity ``warn``.
    """
    if len(history) < MIN_HISTORY:
        return Expectation("table_row_count_to_be_between", (("min_value", 0),), "warn",
                           "rows in the window (too few earlier windows to judge the volume)")
    ordered = sorted(history)
    median = ordered[len(ordered) // 2]
    low, high = int(median * (1 - tolerance)), int(median * (1 + tolerance)) + 1
    return Expectation("table_row_count_to_be_between", (("max_value", high), ("min_value", low)), "warn",
                       f"rows in the window within {tolerance:.0%} of the recent median ({median})")


def suite_for(pipeline: Pipeline, history: list[int]) -> list[Expectation]:
    """The run's suite: standard, configured, then the volume band from ``history`` (rows, newest first)."""
    return [*standard_expectations(pipeline.primary_key), *pipeline.expectations,
            volume_expectation(history, pipeline.volume_tolerance)]
