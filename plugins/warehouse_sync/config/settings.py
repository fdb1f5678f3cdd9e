"""The nested blocks of a pipeline entry: its task timeouts and its CDC settings.

Both are frozen pydantic models with every default; the file gives only the keys it changes
(``task_timeout_minutes: {extract: 45}``, ``cdc: {chunk_changes: 10000}``).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field


class ExecutionTimeouts(BaseModel):
    """Minutes each task of a pipeline's DAGs may run before Airflow stops it (its ``execution_timeout``).

    A task that runs out of time fails and retries like any transient failure. The file gives the
    tasks to change, by task name (``task_timeout_minutes: {extract: 45}``); the others keep the
    defaults below (docs/timeouts.md says why each is what it is). A pipeline's own mapping
    replaces the ``defaults:`` section's mapping as a whole, as every field does.

    Attributes:
        plan: The ``plan`` task: waits out in-flight transactions (``settle_timeout_seconds``), then
            one keyset scan of the window.
        extract: One mapped ``extract`` task: one batch, page by page, to Parquet.
        load: The ``load`` task: every file of the window COPYed and merged in one transaction.
        reconcile: The sync run's ``reconcile`` task: window and whole-table checks, locate, repair.
        validate: The ``validate`` task: Great Expectations on the window's rows.
        reconcile_table: The daily reconcile DAG's ``reconcile_table`` task: the whole table,
            located and repaired.
        health: The daily reconcile DAG's ``health`` task: the mode's health (CDC: the replication
            slot's retained WAL and lag).
        clean_staging: The daily reconcile DAG's ``clean_staging`` task: lists and removes the staged
            files of expired windows.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)

    plan: int = Field(10, strict=True, ge=1)
    extract: int = Field(30, strict=True, ge=1)
    load: int = Field(60, strict=True, ge=1)
    reconcile: int = Field(60, strict=True, ge=1)
    validate_: int = Field(30, strict=True, ge=1, alias="validate")  # "validate" would shadow BaseModel.validate
    reconcile_table: int = Field(180, strict=True, ge=1)
    health: int = Field(10, strict=True, ge=1)
    clean_staging: int = Field(30, strict=True, ge=1)

    def minutes(self) -> dict[str, int]:
        """Minutes by task name."""
        return self.model_dump(by_alias=True)

    def of(self, task: str) -> timedelta:
        """The ``execution_timeout`` of the task named ``task``.

        Raises:
            KeyError: No such task (the message lists the known ones).
        """
        minutes = self.minutes()
        if task not in minutes:
            raise KeyError(f"no execution timeout for task {task!r} (known: {', '.join(minutes)})")
        return timedelta(minutes=minutes[task])

    @property
    def longest(self) -> timedelta:
        """The longest of them: the bound of a task that has no entry of its own."""
        return timedelta(minutes=max(self.minutes().values()))


class CdcSettings(BaseModel):
    """The CDC settings of a pipeline (used by ``mode: cdc`` only): its ``cdc:`` block in the file.

    The file gives only the keys it changes (``cdc: {chunk_changes: 10000}``); the others keep the
    defaults below. A pipeline's own ``cdc:`` block is merged key by key over the ``defaults:``
    section's. The flat keys ``slot_chunk_changes``, ``slot_max_lag_seconds`` and
    ``slot_max_retained_wal_bytes`` of earlier versions are still read, with a deprecation warning.

    Attributes:
        chunk_changes: Changes (rows) per staged Parquet file, and messages per read (slice) from the
            slot, plus the rest of the transaction that reached it (count, >= 1; default 50 000):
            bounds task memory and each read's duration whatever the backlog.
        max_lag_seconds: Alert when a change reached the warehouse more than this many seconds after
            it committed at the source (seconds, >= 1; default 3 600, one hour).
        max_retained_wal_bytes: Alert when the replication slot makes the source keep more WAL than
            this (bytes, >= 1; default 1 GiB): a paused DAG must not fill the source's disk silently.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_changes: int = Field(50_000, strict=True, ge=1)
    max_lag_seconds: int = Field(3600, strict=True, ge=1)
    max_retained_wal_bytes: int = Field(1 << 30, strict=True, ge=1)

