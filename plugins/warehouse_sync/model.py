"""Plain values every room shares: table names, cursor windows, run starts, batches and step results.

A table's name, a window of the cursor, how a run started, a batch, and the typed results of a run's steps (its
plan, what an extract staged, what a load merged, the mode's health).

Frozen dataclasses with no database and no Airflow in them, so that ``sync``, ``cdc``, ``reconcile``,
``quality`` and ``bookkeeping`` can all speak of a window without importing each other. They cross
task boundaries as XCom; ``to_dict``/``from_dict`` give their JSON form. Every step result carries
``phases``: ``{phase name: seconds}`` of its wall time (:mod:`warehouse_sync.timing`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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

    For an integer cursor (a version number a sequence gives each write) the plan also resolves
    the interval into the cursor's own values, ``[cursor_start, cursor_end)``, from the marks it
    records at window ends (:mod:`warehouse_sync.bookkeeping.marks`); every task then compares the
    cursor with those, and the times stay what the run, its audit rows and the page show.

    Attributes:
        start: Inclusive start (timezone-aware), or ``None`` for an unbounded start (a snapshot,
            or a whole-table comparison).
        end: Exclusive end (timezone-aware).
        cursor_start: An integer cursor's inclusive lower bound, or ``None`` (no lower bound).
        cursor_end: An integer cursor's exclusive upper bound; ``None`` for a timestamp cursor.
    """

    start: datetime | None
    end: datetime
    cursor_start: int | None = None
    cursor_end: int | None = None

    @property
    def is_snapshot(self) -> bool:
        """Whether the window is unbounded below (every row with cursor < ``end``)."""
        return self.start is None

    @property
    def is_integer(self) -> bool:
        """Whether the window holds an integer cursor's bounds (``cursor_end`` set)."""
        return self.cursor_end is not None

    def up_to_end(self) -> "Window":
        """Every row before this window's end: ``[-inf, end)``, with the integer cursor's end bound kept."""
        return Window(None, self.end, None, self.cursor_end)

    def to_dict(self) -> dict[str, Any]:
        """``{"start": iso | None, "end": iso}`` (and ``cursor_start``, ``cursor_end`` for an integer cursor)."""
        out: dict[str, Any] = {"start": self.start.isoformat() if self.start else None, "end": self.end.isoformat()}
        if self.is_integer:
            out.update(cursor_start=self.cursor_start, cursor_end=self.cursor_end)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Window":
        """Reads :meth:`to_dict`'s form (extra keys are ignored)."""
        start = raw.get("start")
        return cls(datetime.fromisoformat(start) if start else None, datetime.fromisoformat(str(raw["end"])),
                   raw.get("cursor_start"), raw.get("cursor_end"))

    def __str__(self) -> str:
        text = f"[{self.start.isoformat() if self.start else '-inf'}, {self.end.isoformat()})"
        if self.is_integer:
            text += f" = cursor [{'-inf' if self.cursor_start is None else self.cursor_start}, {self.cursor_end})"
        return text


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
        backfill: Whether it is a run of a backfill (``run_type == "backfill"``): it syncs its own data
            interval only, never extended back to the watermark (:func:`warehouse_sync.sync.plan.run_window`).
    """

    logical_date: datetime | None
    interval_start: datetime | None
    interval_end: datetime | None
    run_after: datetime
    manual: bool = False
    full_snapshot: bool = False
    backfill: bool = False

    @classmethod
    def from_dag_run(cls, dag_run: Any, params: dict[str, Any] | None = None) -> "RunStart":
        """Reads an Airflow ``DagRun`` (the task context's ``dag_run``) and the run's ``params``.

        A run is manual when its ``run_type`` is ``manual`` (the enum or its value), as opposed to
        ``scheduled``, ``backfill`` or ``asset_triggered``; a backfill when it is ``backfill``.
        """
        run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type)).lower()
        return cls(logical_date=dag_run.logical_date, interval_start=dag_run.data_interval_start,
                   interval_end=dag_run.data_interval_end, run_after=dag_run.run_after,
                   manual=run_type == "manual", full_snapshot=bool((params or {}).get("full_snapshot")),
                   backfill=run_type == "backfill")

    @classmethod
    def scheduled(cls, start: datetime, end: datetime, full_snapshot: bool = False,
                  backfill: bool = False) -> "RunStart":
        """A scheduled (or, with ``backfill``, backfilled) run of the data interval ``[start, end)``."""
        return cls(start, start, end, end, manual=False, full_snapshot=full_snapshot, backfill=backfill)


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


@dataclass(frozen=True)
class Plan:
    """What a run's plan decided: the XCom ``plan`` every later task reads.

    Attributes:
        window: The window the run syncs (``[start, end)`` of the cursor, UTC).
        why: A short reason for the window (for the log, the audit row and the XCom).
        batches: The keyset batches to extract, one mapped extract task each (CDC: one batch).
        late_horizon: The start (UTC) of the oldest source transaction still open when the plan gave
            up waiting, or ``None``: a later run re-reads from there; the load releases it.
        facts: The mode's own plan facts (CDC: ``kind`` ``snapshot`` | ``changes``, ``upto_lsn``);
            JSON-friendly.
        seconds: Wall time of the plan (seconds).
        phases: ``{phase: seconds}``.
        warnings: What the plan could not make safe (logged, in the plan's audit row, status ``warn``).
        alerts: Lines the DAG's plan task sends (the late horizon's bound hit, once per transaction).
    """

    window: Window
    why: str
    batches: tuple[Batch, ...]
    late_horizon: datetime | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """One line for the Airflow UI: the synced window (UTC), why, and how many batches.

        E.g. ``synced [2026-12-04T10:00:00+00:00, 2026-12-04T12:00:00+00:00): the data interval; 3 batch(es)``.
        """
        return f"synced {self.window}: {self.why}; {len(self.batches)} batch(es)"

    def to_dict(self, with_batches: bool = True) -> dict[str, Any]:
        """The XCom form: ``{"window", "why", "batches", "late_horizon", "facts", "seconds", "phases", ...}``.

        ``...``: ``"warnings"``, ``"alerts"`` (lists of text).

        Args:
            with_batches: Include the batches; the DAG's XCom ``plan`` leaves them out (every mapped extract
                reads it, and each gets its own batch as a mapped argument), so it stays small.
        """
        return {"window": self.window.to_dict(), "why": self.why,
                "batches": [b.to_dict() for b in self.batches] if with_batches else [],
                "late_horizon": self.late_horizon.isoformat() if self.late_horizon else None,
                "facts": dict(self.facts), "seconds": round(self.seconds, 3), "phases": dict(self.phases),
                "warnings": list(self.warnings), "alerts": list(self.alerts)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Plan:
        """Reads :meth:`to_dict`'s form."""
        horizon = raw.get("late_horizon")
        return cls(Window.from_dict(raw["window"]), str(raw.get("why", "")),
                   tuple(Batch.from_dict(b) for b in raw.get("batches", ())),
                   datetime.fromisoformat(horizon) if horizon else None, dict(raw.get("facts") or {}),
                   float(raw.get("seconds", 0.0)), dict(raw.get("phases") or {}),
                   tuple(raw.get("warnings") or ()), tuple(raw.get("alerts") or ()))

    def expand(self) -> list[dict[str, Any]]:
        """The extract task's mapped keyword arguments: ``[{"batch": Batch.to_dict()}, ...]``."""
        return [{"batch": b.to_dict()} for b in self.batches]


@dataclass(frozen=True)
class StagedFile:
    """One staged Parquet file: its path (URI text), rows, size (bytes) and index in its window folder."""

    path: str
    rows: int
    bytes: int
    batch_index: int

    def to_dict(self) -> dict[str, Any]:
        """``{"path", "rows", "bytes", "batch_index"}``."""
        return {"path": self.path, "rows": self.rows, "bytes": self.bytes, "batch_index": self.batch_index}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StagedFile:
        """Reads :meth:`to_dict`'s form."""
        return cls(str(raw["path"]), int(raw["rows"]), int(raw["bytes"]), int(raw["batch_index"]))


@dataclass(frozen=True)
class Extracted:
    """What one extract task staged: the result of :meth:`warehouse_sync.modes.Mode.extract`.

    Attributes:
        batch_index: The batch extracted.
        files: The staged files, in order (cursor mode: one; CDC: one per chunk).
        rows: Rows (cursor mode) or changes (CDC) staged.
        seconds: Wall time (seconds).
        phases: ``{phase: seconds}`` (cursor mode: ``read``, ``csv_to_arrow``, ``wait_for_source``,
            ``parquet_write``, ``build_copy``; CDC changes: ``read``, ``decode``, ``stage``).
        facts: The mode's own facts (CDC: ``kind``, ``upto_lsn``, ``consistent_point``, ``transactions``,
            ``oldest_commit``, ``newest_commit``); JSON-friendly.
    """

    batch_index: int
    files: tuple[StagedFile, ...]
    rows: int
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        """Bytes staged (all files)."""
        return sum(f.bytes for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """The XCom form (``bytes`` included for readers of the XCom)."""
        return {"batch_index": self.batch_index, "files": [f.to_dict() for f in self.files], "rows": self.rows,
                "bytes": self.bytes, "seconds": round(self.seconds, 3), "phases": dict(self.phases),
                "facts": dict(self.facts)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Extracted:
        """Reads :meth:`to_dict`'s form."""
        return cls(int(raw["batch_index"]), tuple(StagedFile.from_dict(f) for f in raw.get("files", ())),
                   int(raw["rows"]), float(raw.get("seconds", 0.0)), dict(raw.get("phases") or {}),
                   dict(raw.get("facts") or {}))


@dataclass(frozen=True)
class Loaded:
    """What a load merged: the result of :meth:`warehouse_sync.modes.Mode.load`.

    Attributes:
        files: Staged files read.
        staged: Rows (or changes) copied into the staging table.
        merged: Rows the merge inserted, replaced (a newer version) or deleted.
        bytes: Bytes of the files read.
        seconds: Wall time (seconds).
        backfilled: Existing target rows given the values of columns the load added.
        schema_changes: The schema changes recorded (:meth:`ColumnChange.to_dict` each).
        phases: ``{phase: seconds}`` (e.g. ``ensure_target``, ``copy``, ``merge``, ``cursor_index``,
            ``commit``, ``analyze``, ``build_finish``).
        facts: The mode's own facts (CDC: ``slot``: retained WAL, lag, confirmed LSN); JSON-friendly.
        alerts: Health lines over a threshold, sent by the DAG's load task (:class:`Health`).
    """

    files: int
    staged: int
    merged: int
    bytes: int
    seconds: float
    backfilled: int = 0
    schema_changes: tuple[dict[str, Any], ...] = ()
    phases: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    alerts: tuple[str, ...] = ()

    @property
    def unchanged(self) -> int:
        """Rows skipped by the version guard (already present at the same or a newer version)."""
        return self.staged - self.merged

    def to_dict(self) -> dict[str, Any]:
        """The XCom and audit form: every attribute and ``unchanged``."""
        return {"files": self.files, "staged": self.staged, "merged": self.merged, "unchanged": self.unchanged,
                "bytes": self.bytes, "backfilled": self.backfilled, "schema_changes": list(self.schema_changes),
                "seconds": round(self.seconds, 3), "phases": dict(self.phases), **dict(self.facts),
                "alerts": list(self.alerts)}


@dataclass(frozen=True)
class Health:
    """A mode's health outside the rows themselves (CDC: the replication slot), recorded as one audit row.

    Attributes:
        step: The audit step it is recorded as (``cdc_slot``).
        rows: Rows (changes) it speaks of (the audit row's ``rows``).
        bytes: Bytes it speaks of (CDC: WAL retained at the source).
        alerts: One line per threshold crossed; empty when healthy.
        detail: JSON-friendly figures (the audit row's ``detail``).
    """

    step: str
    rows: int = 0
    bytes: int = 0
    alerts: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``{**detail, "alerts": [...]}``: the XCom form."""
        return {**self.detail, "alerts": list(self.alerts)}
