"""Pipeline configuration models: frozen pydantic models with every default, in one place.

The file (its path is chosen by the caller, the DAG file) looks like::

    defaults:                    # optional: overrides of Pipeline's defaults for every pipeline
      batch_size: 20000
    pipelines:
      - name: orders
        source: tpch.orders
        primary_key: [o_orderkey]
        cursor: updated_at
        target: tpch.orders
        expectations:
          - {expect: column_values_to_be_between, column: o_totalprice, min_value: 0}
    alerts:                      # optional
      smtp: {to: [ops@example.com], conn_id: smtp_default, from: warehouse-sync@localhost}
      slack_webhook: {conn_id: slack_alerts}

Every default lives in one place, the field definitions of :class:`Pipeline` and
:class:`~warehouse_sync.config.alerts.Alerts`;
the file only overrides them (``defaults:`` under each pipeline's own values). Reading the file and
turning validation errors into messages that name the file, the pipeline and the field is
:mod:`.load`'s job.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from warehouse_sync.config.alerts import Alerts
from warehouse_sync.config.columns import ColumnSelection
from warehouse_sync.config.expectations import Expectation
from warehouse_sync.config.schedule import SYNC_SCHEDULE, check_schedule, cron_expression
from warehouse_sync.config.settings import CdcSettings, ExecutionTimeouts
from warehouse_sync.model import TableRef

# The Airflow connections a pipeline uses unless it names its own (``source_conn_id``, ``warehouse_conn_id``).
DEFAULT_SOURCE_CONN_ID = "source_postgres"
DEFAULT_WAREHOUSE_CONN_ID = "warehouse_postgres"
# The deprecated flat CDC keys of a pipeline and their new names inside its ``cdc:`` block (CdcSettings).
DEPRECATED_CDC_KEYS = {
    "slot_chunk_changes": "chunk_changes",
    "slot_max_lag_seconds": "max_lag_seconds",
    "slot_max_retained_wal_bytes": "max_retained_wal_bytes",
}


class ConfigError(ValueError):
    """A pipeline configuration is invalid; the message names file, pipeline and field."""


def _table_ref(value: Any) -> TableRef:
    return value if isinstance(value, TableRef) else TableRef.parse(value)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _no_repeats(columns: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(columns)) != len(columns):
        raise ValueError(f"repeated column in {list(columns)}")
    return columns


def _time_zone(name: str | None) -> str | None:
    """An IANA time zone name that this system's zone database knows (``Europe/Berlin``, ``UTC``)."""
    if name is not None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}: give an IANA name such as Europe/Berlin or UTC") from None
    return name


def _none_is_empty(value: Any) -> Any:
    return () if value is None else value


def _expectation(value: Any) -> Expectation:
    return value if isinstance(value, Expectation) else Expectation.parse(value)


# "schema.table" in the file, a TableRef in Python (and back to "schema.table" in model_dump).
_Table = Annotated[TableRef, PlainValidator(_table_ref), PlainSerializer(str, return_type=str)]
_Column = Annotated[str, StringConstraints(min_length=1)]
# A mapping in the file (Expectation.parse), an Expectation in Python (and the mapping in model_dump).
_ExpectationEntry = Annotated[Expectation, PlainValidator(_expectation), PlainSerializer(Expectation.to_dict)]



class Pipeline(BaseModel):
    """One synced table: one entry of ``pipelines:`` in the pipeline file.

    The defaults below are the only ones; the file's ``defaults:`` section and each entry override
    them.

    Attributes:
        name: Short lower_snake_case name (``^[a-z][a-z0-9_]{0,62}$``); the DAG id is ``sync_<name>``.
        source: Source table in the ``source_conn_id`` connection (``schema.table`` in the file).
        target: Target table in the ``warehouse_conn_id`` connection (``schema.table`` in the file).
        primary_key: Primary-key columns, in key order (one or more, no repeats; the file may give a
            single column as a string).
        cursor: Column that moves forward on every insert and update: ``updated_at``, a ``timestamptz``
            or ``timestamp`` column, or an integer one sequence sets (``version``: windows resolved by
            marks, :mod:`warehouse_sync.bookkeeping.marks`); not part of the primary key.
        cursor_time_zone: For a ``timestamp without time zone`` cursor: the IANA time zone whose wall-clock
            time the application writes in it (``Europe/Berlin``; ``UTC`` when it writes UTC). Required
            for such a cursor (the plan refuses it without), refused for a ``timestamptz`` one. Window
            bounds are compared with the cursor as wall-clock times of this zone.
        schedule: When the sync DAG runs: a five-field cron expression or an Airflow preset
            (``@hourly``, ``@daily``, ...), UTC; default :data:`SYNC_SCHEDULE` (every two hours).
            Each run owns the data interval between two ticks (:mod:`.schedule`). The daily
            reconcile DAG keeps its own daily schedule.
        columns: Which columns are synced (:class:`~warehouse_sync.config.columns.ColumnSelection`):
            ``{include: [...]}`` or ``{exclude: [...]}``; ``None`` (default) syncs every column. Key
            and cursor columns are always synced and may not be excluded.
        batch_size: Rows per batch, i.e. per mapped extract task (>= 1).
        snapshot_batch_size: Rows per batch of a full snapshot (>= 1; bigger: a snapshot reads in key
            order, and task memory is bounded by ``page_size`` either way).
        page_size: Rows per keyset page read inside a batch (>= 1; bounds task memory).
        page_bytes: Bytes of source rows (their CSV text) per keyset page (>= 1; default 64 MiB): a page
            ends at ``page_size`` rows or at this many bytes, whichever comes first, so wide rows do
            not multiply task memory (a few pages are held: one read, two queued, one written). The
            load copies staged files in record batches of about this size too.
        settle_timeout_seconds: Seconds to wait for source transactions that started before the
            window end to finish, before extracting (>= 0; see docs/operating.md, "Late commits").
        late_horizon_max_age_seconds: The oldest a late horizon may be, in seconds before its window end
            (>= 1; default 21 600, six hours). A source transaction open longer (a forgotten writing
            session) no longer pins every later window's start: the plan warns, alerts once, and rows it
            commits before the bound are left to the daily reconcile (docs/operating.md, "Late commits").
        lookback_minutes: Minutes re-read before each window start (>= 0; an overlap: the merge is
            idempotent, so re-reading costs only time).
        per_run_table_check: What each sync run checks of the whole table besides its window
            (docs/reconciliation.md): ``keys`` (the default in cursor mode: the primary keys of both
            sides, from the key indexes only; finds deletes and lost keys), ``full`` (every column of
            every row, as the daily reconcile does; cost grows with the table) or ``none`` (the default
            in CDC mode, whose deletes arrive through the slot; in cursor mode deletes wait for the
            daily reconcile). The daily reconcile compares every key in both modes. Replaces the
            deprecated ``reconcile_full_table`` (true = ``full``, false = ``none``).
        key_check_slices: How many slices of the first key column's range the per-run key check
            (``per_run_table_check: keys``) rotates through, one per scheduled window (>= 1; 1: the
            whole key range every run), or ``auto`` (the default): 1 up to ``key_check_slice_keys``
            rows, then the power of two that keeps a slice within that many keys, at most the
            schedule's windows per day (:mod:`warehouse_sync.reconcile.slices`). With ``N`` slices
            each run reads 1/N of both key indexes, and a key deleted at the source is found within
            ``N`` schedule intervals (12 on the two-hourly schedule: one day); the daily reconcile
            checks every key besides.
        key_check_slice_keys: For ``key_check_slices: auto``: the most keys (rows) one run's key
            check should read, per side (>= 1; default 4 000 000).
        delete_mode: ``soft`` (set ``_deleted_at``, keep the row) or ``hard`` (delete it) for rows
            deleted at the source.
        schema_changes: What a load does when the source's columns differ from the target's (the
            modes of dlt's schema contracts; docs/schema-changes.md): ``evolve``
            (a new column is added to the target and its existing rows back-filled, a widened type
            widens the target's, a dropped column stays in the target unfilled), ``freeze`` (any
            difference fails the load) or ``discard`` (new columns are not loaded; the target is
            never altered). A narrowing or incompatible type change fails the load under every policy.
        initial_load: What the first run of a pipeline with no sync state (never run, or reset) reads:
            ``snapshot`` (every row before its window end, so a first deploy never finds rows
            missing) or ``window`` (only its own window; earlier rows wait for a reconcile).
        statement_timeout_seconds: PostgreSQL ``statement_timeout`` of every source session (>= 0;
            0 = none): the longest one statement on the source may run (a page, a window's keyset
            scan, a whole-table checksum). The source connection's extra ``statement_timeout`` wins
            over it.
        lock_timeout_seconds: PostgreSQL ``lock_timeout`` of every source and warehouse session
            (>= 0; 0 = none): the longest one wait for a lock may last. A connection's extra
            ``lock_timeout`` wins over it.
        task_timeout_minutes: Minutes each task may run, its Airflow ``execution_timeout``
            (:class:`ExecutionTimeouts`; the file gives only the tasks it changes, by task name).
        repair_max_rows: Most rows a repair may write (>= 0); beyond it the repair is refused.
        repair_max_fraction: Most rows a repair may write, as a fraction of the table's rows
            (0 < fraction <= 1).
        volume_tolerance: Relative half-width of the volume band around the median row count of the
            recent windows, as a fraction of that median (0 < tolerance < 10; 0.5 = 50 % either
            side); outside it is a data-quality ``warn``.
        staging_retention_days: Days the staged Parquet files of a window are kept after its window
            end (>= 1); the daily reconcile DAG's ``clean_staging`` task removes older windows.
        alerts: The alert channels of this pipeline's alerts (names from the file's ``alerts:``
            section), or ``None``: its ``default:`` route (every channel when that is absent).
        max_staleness_minutes: Freshness deadline (minutes, >= 1) or ``None``: when the newest change
            in the target is older than this at a load or the daily health check, one alert is sent
            (again only after it recovered); :mod:`warehouse_sync.metrics`.
        expectations: Configured data-quality rules (:class:`~warehouse_sync.config.Expectation`),
            in file order; the standard ones (key not null and unique, volume band) are added by the
            validate step.
        tags: Extra DAG tags.
        source_conn_id: Airflow connection of the source database (default ``source_postgres``);
            pipelines naming different ones sync several sources from one deployment.
        warehouse_conn_id: Airflow connection of the warehouse (default ``warehouse_postgres``).
        extract_pool: The Airflow pool the extract tasks run in, or ``None`` (default): Airflow's
            ``default_pool``, which every deployment has, so nothing else must be set up. Naming a
            pool (e.g. ``extract_crm``, shared by every pipeline on one source) bounds the extracts of
            all runs and pipelines in it; the pool must then be created as a deployment step
            (``python -m warehouse_sync.config.pools``; until it exists Airflow runs no extract and
            shows a "non-existent pool" DAG warning).
        extract_pool_slots: The most extracts of one run that read the source at once (>= 1;
            Airflow's ``max_active_tis_per_dagrun``), and the slots of ``extract_pool`` when one is
            named (pipelines sharing a pool: the largest value any of them gives).
        mode: ``cursor`` (default: windows of the ``cursor`` column) or ``cdc`` (every committed change
            from a logical replication slot; docs/cdc.md). The slot and the publication are
            both named :attr:`cdc_slot` (``ws_<name>``, truncated to 63 characters).
        cdc: CDC settings (:class:`CdcSettings`: ``chunk_changes``, ``max_lag_seconds``,
            ``max_retained_wal_bytes``), the file's nested ``cdc:`` block (given keys only, merged
            key by key over the ``defaults:`` section's block). Replaces the deprecated flat keys
            ``slot_chunk_changes``, ``slot_max_lag_seconds`` and ``slot_max_retained_wal_bytes``,
            still accepted (in the file and as keyword arguments) with a ``DeprecationWarning``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    source: _Table
    target: _Table
    primary_key: Annotated[tuple[_Column, ...], BeforeValidator(_one_or_many), Field(min_length=1),
                           AfterValidator(_no_repeats)]
    cursor: _Column
    cursor_time_zone: Annotated[str | None, AfterValidator(_time_zone)] = None
    schedule: Annotated[str, AfterValidator(check_schedule)] = SYNC_SCHEDULE
    columns: ColumnSelection | None = None
    batch_size: int = Field(50_000, strict=True, ge=1)
    snapshot_batch_size: int = Field(1_000_000, strict=True, ge=1)
    page_size: int = Field(20_000, strict=True, ge=1)
    page_bytes: int = Field(64 * 1024 * 1024, strict=True, ge=1)
    settle_timeout_seconds: int = Field(30, strict=True, ge=0)
    lookback_minutes: int = Field(0, strict=True, ge=0)
    late_horizon_max_age_seconds: int = Field(21_600, strict=True, ge=1)
    statement_timeout_seconds: int = Field(300, strict=True, ge=0)
    lock_timeout_seconds: int = Field(30, strict=True, ge=0)
    task_timeout_minutes: ExecutionTimeouts = ExecutionTimeouts()
    per_run_table_check: Literal["keys", "full", "none"] = "keys"
    key_check_slices: Annotated[int, Field(strict=True, ge=1, le=1000)] | Literal["auto"] = "auto"
    key_check_slice_keys: int = Field(4_000_000, strict=True, ge=1)
    delete_mode: Literal["soft", "hard"] = "soft"
    initial_load: Literal["snapshot", "window"] = "snapshot"
    schema_changes: Literal["evolve", "freeze", "discard"] = "evolve"
    repair_max_rows: int = Field(10_000, strict=True, ge=0)
    repair_max_fraction: float = Field(0.05, strict=True, gt=0, le=1)
    volume_tolerance: float = Field(0.5, strict=True, gt=0, lt=10)
    staging_retention_days: int = Field(7, strict=True, ge=1)
    max_staleness_minutes: int | None = Field(None, strict=True, ge=1)
    alerts: tuple[str, ...] | None = None
    expectations: Annotated[tuple[_ExpectationEntry, ...], BeforeValidator(_none_is_empty)] = ()
    tags: tuple[str, ...] = ()
    source_conn_id: str = Field(DEFAULT_SOURCE_CONN_ID, pattern=r"^[A-Za-z0-9_.-]{1,200}$")
    warehouse_conn_id: str = Field(DEFAULT_WAREHOUSE_CONN_ID, pattern=r"^[A-Za-z0-9_.-]{1,200}$")
    extract_pool: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,256}$")
    extract_pool_slots: int = Field(4, strict=True, ge=1)
    # CDC mode: which mode, and the CDC settings in one nested block.
    mode: Literal["cursor", "cdc"] = "cursor"
    cdc: CdcSettings = CdcSettings()

    @property
    def cdc_slot(self) -> str:
        """CDC: the source's replication slot and publication name, ``ws_<name>`` (at most 63 characters)."""
        return f"ws_{self.name}"[:63]

    @model_validator(mode="before")
    @classmethod
    def _flat_cdc_keys(cls, data: Any) -> Any:
        """Moves the deprecated flat keys (``slot_chunk_changes=...``) into ``cdc``, with a DeprecationWarning.

        For Python callers (``Pipeline(**values)``); :func:`~warehouse_sync.config.load_config`
        translates the file's flat keys itself, naming the file. A flat key and its ``cdc`` key
        together are an error.
        """
        if not isinstance(data, dict) or not any(old in data for old in DEPRECATED_CDC_KEYS):
            return data
        block = data.get("cdc", {})
        if isinstance(block, CdcSettings):
            block = {k: getattr(block, k) for k in block.model_fields_set}
        if not isinstance(block, dict):
            return data  # the bad ``cdc`` (and the flat keys, as unknown fields) are reported by validation
        nested = dict(block)
        for old, new in DEPRECATED_CDC_KEYS.items():
            if old not in data:
                continue
            if new in block:
                raise ValueError(f"both '{old}' and 'cdc.{new}' given; keep only 'cdc.{new}'")
            warnings.warn(f"pipeline {data.get('name')!r}: the key '{old}' is deprecated; "
                          f"use 'cdc.{new}' (cdc={{'{new}': ...}})",
                          DeprecationWarning, stacklevel=3)  # 3: past pydantic's frame, to the caller of Pipeline()
            nested[new] = data[old]
        return {**{k: v for k, v in data.items() if k not in DEPRECATED_CDC_KEYS}, "cdc": nested}

    @model_validator(mode="before")
    @classmethod
    def _table_check_of_the_mode(cls, data: Any) -> Any:
        """``per_run_table_check`` not given: ``none`` in CDC mode (deletes come through the slot), else ``keys``."""
        if isinstance(data, dict) and data.get("mode") == "cdc" and "per_run_table_check" not in data:
            return {**data, "per_run_table_check": "none"}
        return data

    @field_validator("cursor")
    @classmethod
    def _cursor_not_in_primary_key(cls, cursor: str, info: ValidationInfo) -> str:
        if cursor in info.data.get("primary_key", ()):
            raise ValueError(f"the cursor {cursor!r} may not be part of the primary key")
        return cursor

    @field_validator("columns")
    @classmethod
    def _key_and_cursor_not_excluded(cls, columns: ColumnSelection | None,
                                     info: ValidationInfo) -> ColumnSelection | None:
        kept = (*info.data.get("primary_key", ()), info.data.get("cursor"))
        needed = [c for c in (columns.exclude or ()) if c in kept] if columns is not None else []
        if needed:
            raise ValueError(f"'exclude' names {needed}: the primary key and the cursor are always synced "
                             "(they order, version and locate every row); remove them from 'exclude'")
        return columns

    @field_validator("expectations")
    @classmethod
    def _expectations_read_synced_columns(cls, rules: tuple[Expectation, ...],
                                          info: ValidationInfo) -> tuple[Expectation, ...]:
        columns = info.data.get("columns")
        always = (*info.data.get("primary_key", ()), info.data.get("cursor") or "")
        for index, rule in enumerate(rules, start=1):
            read = [c.strip() for c in (rule.columns or "").split(",") if c.strip()]
            dropped = [c for c in read if columns is not None and not columns.keeps(c, always)]
            if dropped:
                raise ValueError(f"entry {index} ({rule.expect}) reads {dropped}, which 'columns' leaves out of "
                                 "the sync, so the warehouse has no such column")
        return rules

    @model_validator(mode="after")
    def _plan_outlives_its_settle_wait(self) -> Pipeline:
        plan = self.task_timeout_minutes.plan
        if plan * 60 <= self.settle_timeout_seconds:
            raise ValueError(f"task_timeout_minutes.plan ({plan} min) must be longer than "
                             f"settle_timeout_seconds ({self.settle_timeout_seconds} s): plan waits that long first")
        return self

    def selects(self, column: str) -> bool:
        """Whether the source column ``column`` is synced (the ``columns`` selection; key and cursor always)."""
        return self.columns is None or self.columns.keeps(column, (*self.primary_key, self.cursor))

    @property
    def schedule_cron(self) -> str:
        """The sync schedule as a five-field cron expression (a preset expanded): what the plan computes with."""
        return cron_expression(self.schedule)

    def execution_timeout(self, task: str) -> timedelta:
        """The ``execution_timeout`` of the task named ``task`` (:meth:`ExecutionTimeouts.of`)."""
        return self.task_timeout_minutes.of(task)

    @property
    def dag_id(self) -> str:
        """The sync DAG's id: ``sync_<name>``."""
        return f"sync_{self.name}"

    @property
    def asset_uri(self) -> str:
        """The Airflow ``Asset`` the sync DAG's load updates: ``warehouse-sync://<warehouse_conn_id>/<schema>.<table>``.

        A scheme of our own (Airflow 3 accepts any scheme but ``airflow``; it normalizes only those a
        provider registers, and ``postgres://`` would need the warehouse's host, which the DAG file
        may not look up at parse time). Downstream DAGs schedule on ``Asset(<this URI>)``.
        """
        return f"warehouse-sync://{self.warehouse_conn_id}/{self.target}"

    @property
    def extract_pool_name(self) -> str:
        """The Airflow pool of this pipeline's extract tasks: ``extract_pool``, or ``default_pool``."""
        return self.extract_pool or "default_pool"


class SyncConfig(BaseModel):
    """The whole file: where it came from, its pipelines in file order, and its alert channels.

    Attributes:
        path: The file read.
        pipelines: The pipelines, in file order (names unique).
        alerts: The alert channels.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    pipelines: tuple[Pipeline, ...]
    alerts: Alerts = Alerts()

    def alerts_for(self, pipeline: Pipeline) -> Alerts:
        """The channels of one pipeline's alerts: its own ``alerts:`` route, else the default route."""
        return self.alerts.routed(pipeline.alerts)

    def pipeline(self, name: str) -> Pipeline:
        """Returns the pipeline called ``name`` (or whose source or target is ``name``).

        Args:
            name: A pipeline name, or a ``schema.table`` source or target.

        Returns:
            The first matching pipeline.

        Raises:
            ConfigError: No such pipeline.
        """
        for p in self.pipelines:
            if name in (p.name, str(p.source), str(p.target)):
                return p
        known = ", ".join(p.name for p in self.pipelines) or "none"
        raise ConfigError(f"{self.path}: no pipeline named {name!r} (known: {known})")
