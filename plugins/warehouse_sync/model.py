"""Plain values every room shares: a table's name, a window of the cursor, how a run started, a batch.

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
class RunStart:
    """How an Airflow run started: the values of its context that decide its window.

    Attributes:
        logical_date: The run's logical date (UTC), or ``None`` for a run triggered without one
            (the Trigger button's default, ``airflow dags trigger`` without ``-l``, the REST API).
        interval_start: Airflow's data interval start, or ``None`` (no logical date).
        interval_end: Airflow's data interval end, or ``None``.
        run_after: When the run was allowed to start (UTC): the trigger time of a manual run.
        manual: Whether it was triggered by a person or the API (``run_type == "manual"``), as
            opposed to the scheduler or a backfill.
        full_snapshot: The run param ``full_snapshot``: read every row before the window end.
    """

    logical_date: datetime | None
    interval_start: datetime | None
    interval_end: datetime | None
    run_after: datetime
    manual: bool = False
    full_snapshot: bool = False

    @classmethod
    def from_dag_run(cls, dag_run: Any, params: dict[str, Any] | None = None) -> "RunStart":
        """Reads an Airflow ``DagRun`` (the task context's ``dag_run``) and the run's ``params``.

        A run is manual when its ``run_type`` is ``manual`` (the enum or its value), as opposed to
        ``scheduled``, ``backfill`` or ``asset_triggered``.
        """
        run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
        return cls(logical_date=dag_run.logical_date, interval_start=dag_run.data_interval_start,
                   interval_end=dag_run.data_interval_end, run_after=dag_run.run_after,
                   manual=str(run_type).lower() == "manual",
                   full_snapshot=bool((params or {}).get("full_snapshot")))

    @classmethod
    def scheduled(cls, start: datetime, end: datetime, full_snapshot: bool = False) -> "RunStart":
        """A scheduled (or backfilled) run of the data interval ``[start, end)``."""
        return cls(start, start, end, end, manual=False, full_snapshot=full_snapshot)


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
