"""Schema changes: compare the source's columns with the target's and decide what the load does.

Pure functions of two column lists and the pipeline's ``schema_changes`` policy (no database call,
no DDL: :mod:`.ddl` runs the DDL this module decides, in the load's transaction). The
policies are the modes users know from dlt's schema contracts:

==========================  ============================  ==================  =============================
change at the source        ``evolve`` (default)          ``freeze``          ``discard``
==========================  ============================  ==================  =============================
new column                  added to the target (same     rejected            ignored: not loaded
                            type, nullable), existing
                            rows back-filled
widening type               target type widened           rejected            rejected (discard never
                                                                              alters the target)
narrowing / incompatible    rejected                      rejected            rejected
dropped column              kept, no longer filled        rejected            kept, no longer filled
                            (``NOT NULL`` dropped)                            (rejected if ``NOT NULL``)
==========================  ============================  ==================  =============================

Widening means every value of the old type is a value of the new one, unchanged: ``varchar(n)`` to
``varchar(m)`` with ``m > n``, unbounded ``varchar`` or ``text``; ``smallint`` to ``integer`` or
``bigint``, ``integer`` to ``bigint``; ``numeric(p,s)`` to ``numeric(q,s)`` with ``q > p`` (same
scale) or to unconstrained ``numeric``. Anything else is a breaking change (``timestamp`` to
``timestamptz`` too: it reinterprets every value in a time zone). A rejected change fails the load
(:class:`SchemaChanged`) before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from warehouse_sync.db.catalog import Column

Policy = Literal["evolve", "freeze", "discard"]
# What happened to a change: applied to the target, kept (a dropped column stays), ignored (not
# loaded), or rejected (the load fails, nothing is written).
APPLIED, KEPT, IGNORED, REJECTED = "applied", "kept", "ignored", "rejected"

_VARCHAR = re.compile(r"^character varying\((\d+)\)$")
_NUMERIC = re.compile(r"^numeric\((\d+),(\d+)\)$")
_INTEGER_RANK = {"int2": 1, "int4": 2, "int8": 3}


def _varchar_length(column: Column) -> int | None:
    match = _VARCHAR.match(column.sql_type)
    return int(match.group(1)) if match else None


def is_widening(old: Column, new: Column) -> bool:
    """Whether a column's type can change from ``old`` to ``new`` without losing or altering any value.

    ``varchar(n)`` → ``varchar(m > n)``, unbounded ``varchar``, ``text``; ``smallint`` → ``integer``,
    ``bigint``; ``integer`` → ``bigint``; ``numeric(p,s)`` → ``numeric(q > p, s)`` or ``numeric``.
    The same type is not a widening (it is no change).
    """
    if old.sql_type == new.sql_type:
        return False
    if old.type_name in _INTEGER_RANK and new.type_name in _INTEGER_RANK:
        return _INTEGER_RANK[new.type_name] > _INTEGER_RANK[old.type_name]
    if old.type_name == "varchar":
        if new.type_name == "text":
            return True
        if new.type_name == "varchar":
            was, now = _varchar_length(old), _varchar_length(new)
            return was is not None and (now is None or now > was)
        return False
    if old.type_name == "numeric" and new.type_name == "numeric":
        was_match, now_match = _NUMERIC.match(old.sql_type), _NUMERIC.match(new.sql_type)
        if was_match and now_match:
            return now_match.group(2) == was_match.group(2) and int(now_match.group(1)) > int(was_match.group(1))
        return was_match is not None and now_match is None  # numeric(p,s) -> numeric: unconstrained holds every value
    return False



class SchemaChanged(RuntimeError):
    """The pipeline's ``schema_changes`` policy rejects a difference between source and target columns.

    Also raised when a file was extracted with other columns than the source has now. The message names the
    tables, each column with its old and new type, and the way out. Nothing was written.
    """


@dataclass(frozen=True)
class ColumnChange:
    """One difference between source and target columns, and what the policy makes of it.

    Attributes:
        column: The column's name.
        change: ``added`` (new in the source), ``dropped`` (gone from the source), ``widened``,
            ``narrowed`` (the reverse of a widening) or ``incompatible`` (any other type change).
        old_type: The target's type (``None`` for an added column).
        new_type: The source's type (``None`` for a dropped column).
        outcome: ``applied``, ``kept``, ``ignored`` or ``rejected``.
        detail: What the load does about it, in words.
    """

    column: str
    change: str
    old_type: str | None
    new_type: str | None
    outcome: str
    detail: str

    def describe(self) -> str:
        """The difference alone, e.g. ``column 'note' changed type from text to integer``."""
        if self.change == "added":
            return f"column {self.column!r} ({self.new_type}) is new in the source"
        if self.change == "dropped":
            return f"column {self.column!r} is gone from the source"
        return f"column {self.column!r} changed type from {self.old_type} to {self.new_type}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field by name."""
        return asdict(self)


@dataclass(frozen=True)
class SchemaDecision:
    """What the load does about the differences between source and target columns.

    Attributes:
        policy: The pipeline's ``schema_changes``.
        changes: Every difference: added (source order), dropped (target order), retyped (source order).
        columns: The source columns the load copies, in source order (those the target has, or will
            have once ``add`` is applied).
        add: Source columns to add to the target (evolve), in source order.
        widen: Source columns whose target column takes the source's (wider) type.
        relax: Target columns gone from the source whose ``NOT NULL`` is dropped (they are no longer filled).
    """

    policy: str
    changes: tuple[ColumnChange, ...]
    columns: tuple[Column, ...]
    add: tuple[Column, ...] = ()
    widen: tuple[Column, ...] = ()
    relax: tuple[str, ...] = ()

    @property
    def rejected(self) -> tuple[ColumnChange, ...]:
        """The changes the policy rejects."""
        return tuple(c for c in self.changes if c.outcome == REJECTED)

    @property
    def alters_target(self) -> bool:
        """Whether the load alters the target: columns to add, to widen or to relax."""
        return bool(self.add or self.widen or self.relax)


def describe_schema_changes(source: list[Column], target: list[Column]) -> list[str]:
    """Human-readable differences between source and target columns (empty when they match)."""
    return [c.describe() for c in decide(source, target, "freeze").changes]


def decide(source: list[Column], target: list[Column], policy: Policy) -> SchemaDecision:
    """Compares source and target columns (metadata columns ``_*`` excluded by the caller) under ``policy``.

    Column order alone is no change. See the module's table for each change kind under each policy.
    """
    tgt = {c.name: c for c in target}
    src = {c.name: c for c in source}
    changes: list[ColumnChange] = []
    add: list[Column] = []
    widen: list[Column] = []
    relax: list[str] = []
    for column in source:
        if column.name in tgt:
            continue
        if policy == "evolve":
            add.append(column)
            changes.append(ColumnChange(column.name, "added", None, column.sql_type, APPLIED,
                                        "added to the target (nullable); existing rows back-filled from the source"))
        elif policy == "discard":
            changes.append(ColumnChange(column.name, "added", None, column.sql_type, IGNORED,
                                        "not loaded: schema_changes is 'discard'"))
        else:
            changes.append(ColumnChange(column.name, "added", None, column.sql_type, REJECTED,
                                        "schema_changes is 'freeze'"))
    for column in target:
        if column.name in src:
            continue
        if policy == "freeze":
            outcome, detail = REJECTED, "schema_changes is 'freeze'"
        elif column.not_null and policy == "discard":
            outcome, detail = REJECTED, ("the target column is NOT NULL, so new rows cannot be written without it, "
                                         "and schema_changes 'discard' never alters the target")
        else:
            outcome, detail = KEPT, "kept in the target with its values; no longer filled"
            if column.not_null:
                relax.append(column.name)
                detail += " (its NOT NULL dropped)"
        changes.append(ColumnChange(column.name, "dropped", column.sql_type, None, outcome, detail))
    for column in source:
        old = tgt.get(column.name)
        if old is None or old.sql_type == column.sql_type:
            continue
        if is_widening(old, column):
            if policy == "evolve":
                widen.append(column)
                change = ColumnChange(column.name, "widened", old.sql_type, column.sql_type, APPLIED,
                                      "target type widened; every value kept")
            else:
                change = ColumnChange(column.name, "widened", old.sql_type, column.sql_type, REJECTED,
                                      f"schema_changes is {policy!r}")
        else:
            kind = "narrowed" if is_widening(column, old) else "incompatible"
            change = ColumnChange(column.name, kind, old.sql_type, column.sql_type, REJECTED,
                                  "values of the target's type may not fit the new type"
                                  if kind == "narrowed" else "the types are not compatible")
        changes.append(change)
    columns = tuple(c for c in source if c.name in tgt or c in add)
    refused = [c.column for c in changes if c.outcome == REJECTED]
    if refused:  # the load fails: nothing it would have applied is applied
        because = f"not applied: the load is refused for column(s) {', '.join(refused)}"
        changes = [ColumnChange(c.column, c.change, c.old_type, c.new_type, REJECTED, because)
                   if c.outcome == APPLIED else c for c in changes]
        return SchemaDecision(policy, tuple(changes), columns)
    return SchemaDecision(policy, tuple(changes), columns, tuple(add), tuple(widen), tuple(relax))
