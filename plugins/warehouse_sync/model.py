"""Plain values every room shares: a table's name, a window of the cursor, a keyset batch.

Frozen dataclasses with no database and no Airflow in them, so that ``sync``, ``reconcile``,
``quality`` and ``bookkeeping`` can all speak of a window without importing each other. Windows and
batches cross task boundaries as XCom; ``to_dict``/``from_dict`` give their JSON form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class TableRef:
    """A schema-qualified table name, e.g. ``tpch.orders``.

    Attributes:
        schema: Schema name (unquoted; always composed with ``sql.Identifier``).
        name: Table name (unquoted).
    """

    schema: str
    name: str

    @classmethod
    def parse(cls, text: str) -> "TableRef":
        """``"tpch.orders"`` -> ``TableRef("tpch", "orders")``.

        Raises:
            ValueError: Not exactly one dot with a name on each side.
        """
        parts = text.split(".") if isinstance(text, str) else []
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"expected 'schema.table', got {text!r}")
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Window:
    """A half-open interval ``[start, end)`` of the cursor column, in UTC.

    Attributes:
        start: Inclusive start (timezone-aware), or ``None`` for an unbounded start (a snapshot,
            or a whole-table comparison).
        end: Exclusive end (timezone-aware).
    """

    start: datetime | None
    end: datetime

    @property
    def is_snapshot(self) -> bool:
        """Whether the window is unbounded below (every row with cursor < ``end``)."""
        return self.start is None

    def to_dict(self) -> dict[str, str | None]:
        """``{"start": iso | None, "end": iso}``: the XCom form."""
        return {"start": self.start.isoformat() if self.start else None, "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Window":
        """Reads :meth:`to_dict`'s form (extra keys are ignored)."""
        start = raw.get("start")
        return cls(datetime.fromisoformat(start) if start else None, datetime.fromisoformat(str(raw["end"])))

    def __str__(self) -> str:
        return f"[{self.start.isoformat() if self.start else '-inf'}, {self.end.isoformat()})"


@dataclass(frozen=True)
class Batch:
    """One keyset range ``[lower, upper)`` of a window: the unit of one mapped extract task.

    Attributes:
        index: 0-based position in the window.
        lower: Inclusive lower keyset bound ``(cursor, pk...)`` (``(pk...)`` for a snapshot) as
            PostgreSQL text, or ``None`` for the first batch.
        upper: Exclusive upper keyset bound, same shape, or ``None`` for the last batch.
    """

    index: int
    lower: tuple[str, ...] | None
    upper: tuple[str, ...] | None

    def to_dict(self) -> dict[str, Any]:
        """``{"index", "lower", "upper"}``: the XCom form (bounds as lists or ``None``)."""
        return {"index": self.index, "lower": list(self.lower or []) or None, "upper": list(self.upper or []) or None}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Batch":
        """Reads :meth:`to_dict`'s form."""
        lower, upper = raw.get("lower"), raw.get("upper")
        return cls(int(raw["index"]), tuple(lower) if lower else None, tuple(upper) if upper else None)
