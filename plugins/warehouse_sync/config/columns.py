"""Which source columns a pipeline syncs: its ``columns: {include: [...]}`` or ``{exclude: [...]}``.

Without ``columns:`` every column is synced. ``include`` names the columns to sync (the primary key
and the cursor are always synced, listed or not); ``exclude`` names columns never to sync, e.g.
personal data. An excluded column is never read from the source, staged, created in the target,
checksummed or validated: :func:`warehouse_sync.db.catalog.describe_source` applies the selection
to the table's columns once, and every mode and the reconcile use the columns it returns. That the
named columns exist is checked there, at plan time (the file is read without a database).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, model_validator

_Column = Annotated[str, StringConstraints(min_length=1)]


def _no_repeats(columns: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if columns is not None and len(set(columns)) != len(columns):
        raise ValueError(f"repeated column in {list(columns)}")
    return columns


_Names = Annotated[tuple[_Column, ...] | None, AfterValidator(_no_repeats)]


class ColumnSelection(BaseModel):
    """The columns a pipeline syncs: exactly one of ``include`` or ``exclude``.

    Attributes:
        include: The columns to sync (at least one); the primary key and the cursor are synced too.
        exclude: The columns never to sync (at least one); may not name a key or cursor column
            (:class:`~warehouse_sync.config.Pipeline` checks that).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    include: _Names = None
    exclude: _Names = None

    @model_validator(mode="after")
    def _one_of_the_two(self) -> ColumnSelection:
        if (self.include is None) == (self.exclude is None):
            raise ValueError("give exactly one of 'include' (the columns to sync) or 'exclude' (the columns "
                             "never to sync)")
        if not (self.include or self.exclude):
            raise ValueError(f"'{'include' if self.include is not None else 'exclude'}' lists no column")
        return self

    @property
    def named(self) -> tuple[str, ...]:
        """The column names the selection gives (included or excluded), in file order."""
        return self.include if self.include is not None else self.exclude or ()

    def keeps(self, column: str, always: tuple[str, ...] = ()) -> bool:
        """Whether ``column`` is synced.

        Args:
            column: A source column name.
            always: Columns synced whatever the selection says (the primary key and the cursor).

        Returns:
            ``True`` when ``column`` is in ``always``, in ``include``, or not in ``exclude``.
        """
        if column in always:
            return True
        if self.include is not None:
            return column in self.include
        return column not in (self.exclude or ())
