"""Data-quality checks as configured: the ``checks`` list of a pipeline in ``include/pipelines.yaml``.

Each entry names a Great Expectations 1.x expectation in snake case (``column_values_to_be_in_set``
is ``gx.expectations.ExpectColumnValuesToBeInSet``), its arguments, and a severity::

    checks:
      - {expect: column_values_to_be_in_set, column: o_orderstatus, value_set: [O, F, P], severity: fail}
      - {expect: column_values_to_be_between, column: o_totalprice, min_value: 0}

``severity: fail`` (the default) stops the run and alerts; ``warn`` is only reported. Every pipeline
also gets, without configuration, primary key not null and unique among live rows (``fail``) and a
volume band on the window's row count (``warn``, ``volume_tolerance`` around the median of the
recent windows). This module only parses and validates: Great Expectations is imported by
:mod:`warehouse_sync.quality` inside the task, never at DAG parse time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SEVERITIES = ("fail", "warn")
# The expectations of great_expectations 1.24 (gx.expectations.Expect*), in snake case. A name not
# listed is a configuration error at load time, so a typo never reaches a run.
EXPECTATIONS = frozenset("""
column_distinct_values_to_be_in_set column_distinct_values_to_contain_set column_distinct_values_to_equal_set
column_max_to_be_between column_mean_to_be_between column_median_to_be_between column_min_to_be_between
column_most_common_value_to_be_in_set column_pair_values_a_to_be_greater_than_b column_pair_values_to_be_equal
column_pair_values_to_be_in_set column_proportion_of_non_null_values_to_be_between
column_proportion_of_unique_values_to_be_between column_quantile_values_to_be_between column_stdev_to_be_between
column_sum_to_be_between column_to_exist column_type_to_be column_unique_value_count_to_be_between
column_value_lengths_to_be_between column_value_lengths_to_equal column_values_to_be_between
column_values_to_be_in_set column_values_to_be_in_type_list column_values_to_be_null column_values_to_be_of_type
column_values_to_be_unique column_values_to_match_like_pattern column_values_to_match_regex
column_values_to_not_be_in_set column_values_to_not_be_null column_values_to_not_match_like_pattern
column_values_to_not_match_regex compound_columns_to_be_unique multicolumn_sum_to_equal
select_column_values_to_be_unique_within_record table_column_count_to_be_between table_column_count_to_equal
table_columns_to_match_ordered_list table_columns_to_match_set table_row_count_to_be_between
table_row_count_to_equal
""".split())
_ARGUMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Check:
    """One expectation with its severity.

    Attributes:
        expect: Snake-case expectation name (``column_values_to_be_between``).
        arguments: The expectation's keyword arguments, as sorted ``(name, value)`` pairs (lists
            become tuples so that the check stays hashable).
        severity: ``fail`` or ``warn``.
        label: Short plain-language name shown on the report page.
    """

    expect: str
    arguments: tuple[tuple[str, Any], ...]
    severity: str = "fail"
    label: str = ""

    @property
    def class_name(self) -> str:
        """The Great Expectations class name: ``ExpectColumnValuesToBeBetween``."""
        return "Expect" + "".join(part.capitalize() for part in self.expect.split("_"))

    def kwargs(self) -> dict[str, Any]:
        """The arguments as keyword arguments (tuples back to lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.arguments}

    @property
    def title(self) -> str:
        """What the report shows: the configured label, else :meth:`describe`."""
        return self.label or self.describe()

    @property
    def columns(self) -> str | None:
        """The column(s) the check reads, comma-separated (``None`` for a table-level check)."""
        kwargs = self.kwargs()
        names = [kwargs["column"]] if "column" in kwargs else list(kwargs.get("column_list") or [])
        names += [str(kwargs[k]) for k in ("column_A", "column_B") if k in kwargs]
        return ", ".join(names) or None

    def describe(self) -> str:
        """``column o_totalprice: values to be between (min_value=0)``, for people."""
        kwargs = self.kwargs()
        column = kwargs.pop("column", None)
        what = self.expect.replace("column_", "", 1).replace("_", " ") if column else self.expect.replace("_", " ")
        details = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        return (f"{column}: " if column else "") + what + (f" ({details})" if details else "")


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def parse_checks(raw: Any, where: str) -> tuple[Check, ...]:
    """Validates a pipeline's ``checks`` list.

    Args:
        raw: The YAML value (a list of mappings, or ``None``).
        where: ``"<file>: pipeline 'name'"``, for error messages.

    Returns:
        The checks, in file order.

    Raises:
        ConfigError: Not a list, an unknown expectation, a bad severity or argument name (the
            message names file, pipeline, field and entry).
    """
    from warehouse_sync.config import ConfigError

    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{where}, field 'checks': expected a list of expectations")
    checks = []
    for i, entry in enumerate(raw, start=1):
        at = f"{where}, field 'checks' entry {i}"
        if not isinstance(entry, dict) or "expect" not in entry:
            raise ConfigError(f"{at}: expected a mapping with 'expect' (e.g. column_values_to_not_be_null)")
        entry = dict(entry)
        expect = entry.pop("expect")
        if expect not in EXPECTATIONS:
            raise ConfigError(f"{at}: unknown expectation {expect!r} (Great Expectations 1.x names in snake "
                              "case, e.g. column_values_to_be_between)")
        severity = entry.pop("severity", "fail")
        if severity not in SEVERITIES:
            raise ConfigError(f"{at}: severity must be one of {SEVERITIES}, got {severity!r}")
        label = entry.pop("label", "")
        bad = [k for k in entry if not isinstance(k, str) or not _ARGUMENT.match(k)]
        if bad:
            raise ConfigError(f"{at}: invalid argument name(s) {bad}")
        checks.append(Check(expect, tuple(sorted((k, _frozen(v)) for k, v in entry.items())), severity,
                            str(label)))
    return tuple(checks)


def standard_checks(primary_key: tuple[str, ...]) -> tuple[Check, ...]:
    """The checks every pipeline gets: key columns not null, key unique among live rows (``fail``)."""
    not_null = tuple(Check("column_values_to_not_be_null", (("column", k),), "fail", f"primary key {k} is set")
                     for k in primary_key)
    if len(primary_key) == 1:
        unique = Check("column_values_to_be_unique", (("column", primary_key[0]),), "fail", "primary key is unique")
    else:
        unique = Check("compound_columns_to_be_unique", (("column_list", tuple(primary_key)),), "fail",
                       "primary key is unique")
    return (*not_null, unique)


def volume_check(history: list[int], tolerance: float) -> Check:
    """The volume band: the window's row count within ``tolerance`` of the median of ``history``.

    Args:
        history: Row counts of recent windows (newest first); fewer than 3 gives an open band
            (the count is recorded, nothing is judged yet).
        tolerance: Relative half-width of the band (0.5 = 50 % below to 50 % above the median).

    Returns:
        A ``table_row_count_to_be_between`` check with severity ``warn``.
    """
    if len(history) < 3:
        return Check("table_row_count_to_be_between", (("min_value", 0),), "warn",
                     "rows in the window (too few earlier windows to judge the volume)")
    ordered = sorted(history)
    median = ordered[len(ordered) // 2]
    low, high = int(median * (1 - tolerance)), int(median * (1 + tolerance)) + 1
    return Check("table_row_count_to_be_between", (("max_value", high), ("min_value", low)), "warn",
                 f"rows in the window within {tolerance:.0%} of the recent median ({median})")
