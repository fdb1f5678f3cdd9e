"""Data-quality expectations as configured: the ``expectations`` list of a pipeline in the pipeline file.

An *expectation* is one data-quality rule. Each entry names a Great Expectations 1.x expectation in
snake case (``column_values_to_be_in_set`` is ``gx.expectations.ExpectColumnValuesToBeInSet``), its
arguments, and optionally a severity and a label::

    expectations:
      - {expect: column_values_to_be_in_set, column: o_orderstatus, value_set: [O, F, P], severity: fail}
      - {expect: column_values_to_be_between, column: o_totalprice, min_value: 0, label: "price >= 0"}

``severity: fail`` (the default) stops the run and alerts; ``warn`` is only reported. The standard
expectations every pipeline gets without configuration (primary key not null and unique, the volume
band) are built by the validate step, not here. This module only parses and validates, with no
pydantic, database or Airflow in it: Great Expectations is imported by the validate step inside the
task, never at DAG parse time.
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
# Arguments the validate step sets itself: ``meta`` carries severity, label and position to the results
# (quality/validate.py), so a configured ``meta`` would make every run fail with a duplicate argument.
RESERVED_ARGUMENTS = frozenset({"meta"})


@dataclass(frozen=True)
class Expectation:
    """One data-quality rule: a Great Expectations expectation with its arguments and severity.

    Frozen and hashable, so that a :class:`~warehouse_sync.config.Pipeline` holding it is too.

    Attributes:
        expect: Snake-case expectation name (``column_values_to_be_between``), one of
            :data:`EXPECTATIONS`.
        arguments: The expectation's keyword arguments, as sorted ``(name, value)`` pairs (lists
            become tuples so that the expectation stays hashable).
        severity: ``fail`` (stop the run and alert) or ``warn`` (only report); see
            :data:`SEVERITIES`.
        label: Short plain-language name shown on the report page (empty: :meth:`describe`).
    """

    expect: str
    arguments: tuple[tuple[str, Any], ...]
    severity: str = "fail"
    label: str = ""

    @classmethod
    def parse(cls, raw: Any) -> Expectation:
        """Reads one entry of a pipeline's ``expectations`` list.

        Args:
            raw: A mapping with ``expect``, optional ``severity`` (``fail`` or ``warn``, default
                ``fail``) and ``label``; every other key is an argument of the expectation.

        Returns:
            The expectation.

        Raises:
            ValueError: Not a mapping with ``expect``, an unknown expectation, a bad severity, an
                invalid argument name or a reserved one (:data:`RESERVED_ARGUMENTS`; the message says
                which, without file or pipeline).
        """
        if not isinstance(raw, dict) or "expect" not in raw:
            raise ValueError("expected a mapping with 'expect' (e.g. column_values_to_not_be_null)")
        entry = dict(raw)
        expect = entry.pop("expect")
        if expect not in EXPECTATIONS:
            raise ValueError(f"unknown expectation {expect!r} (Great Expectations 1.x names in snake case, "
                             "e.g. column_values_to_be_between)")
        severity = entry.pop("severity", "fail")
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        label = entry.pop("label", "")
        bad = [k for k in entry if not isinstance(k, str) or not _ARGUMENT.match(k)]
        if bad:
            raise ValueError(f"invalid argument name(s) {bad}")
        reserved = sorted(RESERVED_ARGUMENTS.intersection(entry))
        if reserved:
            raise ValueError(f"argument(s) {reserved} are set by the validate step (severity, label and "
                             "position travel in 'meta'); use 'label' and 'severity' instead")
        arguments = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in entry.items()))
        return cls(expect, arguments, severity, "" if label is None else str(label))

    def to_dict(self) -> dict[str, Any]:
        """The file form, the inverse of :meth:`parse`.

        ``{"expect": ..., <arguments>, "severity": ...}`` (and ``label`` when set).
        """
        return {"expect": self.expect, **self.kwargs(), "severity": self.severity,
                **({"label": self.label} if self.label else {})}

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
        """The column(s) the expectation reads, comma-separated (``None`` for a table-level one)."""
        kwargs = self.kwargs()
        names = [kwargs["column"]] if "column" in kwargs else list(kwargs.get("column_list") or [])
        names += [str(kwargs[k]) for k in ("column_A", "column_B") if k in kwargs]
        return ", ".join(names) or None

    def describe(self) -> str:
        """``o_totalprice: values to be between (min_value=0)``, for people."""
        kwargs = self.kwargs()
        column = kwargs.pop("column", None)
        what = self.expect.replace("column_", "", 1).replace("_", " ") if column else self.expect.replace("_", " ")
        details = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        return (f"{column}: " if column else "") + what + (f" ({details})" if details else "")
