"""The source side of CDC mode: publication and replication slot lifecycle, snapshot handoff, health.

One publication and one logical replication slot (plugin ``pgoutput``) per pipeline, both named
:attr:`Pipeline.cdc_slot` (``ws_<name>``). The first run creates them: the publication first (it
publishes inserts, updates, deletes and truncates of the pipeline's source table), then the slot, over a
replication connection (``replication=database``, which psycopg 3 opens like any other) with
``CREATE_REPLICATION_SLOT … LOGICAL pgoutput (SNAPSHOT 'export')``. The server returns the slot's
consistent point and the name of a snapshot that sees exactly the transactions committed before it;
the initial read uses that snapshot (``SET TRANSACTION SNAPSHOT``) while the replication connection
stays open. The slot then decodes exactly the transactions that commit at or after the consistent
point, so the handoff neither loses nor doubles a change (PostgreSQL docs, "Exported Snapshots" and
"Streaming Replication Protocol").

A ``full_snapshot`` of a pipeline whose slot is live keeps that slot until the new snapshot is in the
warehouse: it creates its slot beside it (:func:`pending_slot`, ``wsn_<name>``), and only after the
load committed does :func:`promote_pending` drop the old slot and copy the new one under the live
name (``pg_copy_logical_replication_slot``: same consistent point). A snapshot that never loads thus
loses nothing: the next run applies the old slot's changes, and drops the pending slot
(:func:`drop_stale_pending`).

Confirming is :func:`confirm`: ``pg_replication_slot_advance`` to the run's LSN, called only after
the warehouse committed that run's changes; a run killed before it re-reads the same changes, which
the LSN version guard (:mod:`.apply`) makes harmless.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from warehouse_sync.cdc.decode import lsn_to_int, lsn_to_text
from warehouse_sync.config import Pipeline
from warehouse_sync.db.catalog import TableNotFound
from warehouse_sync.db.statements import load_sql, table_ident

log = logging.getLogger(__name__)

PUBLICATION_TABLES = "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s"
CREATE_PUBLICATION = sql.SQL("CREATE PUBLICATION {pub} FOR TABLE {table} "
                             "WITH (publish = 'insert, update, delete, truncate')")
ADD_TABLE = sql.SQL("ALTER PUBLICATION {pub} ADD TABLE {table}")
CREATE_SLOT = "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')"
DROP_SLOT = "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s"
ADVANCE_SLOT = "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)"
COPY_SLOT = "SELECT pg_copy_logical_replication_slot(%s, %s)"
CURRENT_LSN = "SELECT pg_current_wal_lsn()::text, clock_timestamp()"
FLUSHED_PAST = "SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn"
FLUSH_WAIT_SECONDS = 2.0
"""How long :func:`log_running_transactions` waits for the source to flush its record (seconds)."""
MIN_ADVANCE_BYTES = 1 << 20
"""The smallest step (bytes of WAL) :func:`confirm` advances in after ``statement_timeout`` cancelled bigger ones."""


class CdcUnavailable(RuntimeError):
    """The source cannot serve CDC mode (``wal_level`` is not ``logical``, or no free replication slot).

    The message says what to change on the source.
    """


class ReplicaIdentityUnusable(CdcUnavailable):
    """The source table's replica identity cannot carry the pipeline's key in an UPDATE or DELETE.

    Publishing the table then would break the application (``REPLICA IDENTITY DEFAULT`` without a
    primary key, or ``NOTHING``: PostgreSQL rejects every UPDATE and DELETE of a table whose
    publication publishes them), or lose deletes (an identity without every key column: the old row
    arrives without its key). The table is not published; the message gives the exact
    ``ALTER TABLE … REPLICA IDENTITY …`` that fixes it.
    """


class SlotLost(RuntimeError):
    """The pipeline's slot is missing or invalidated after its initial snapshot.

    Changes may therefore have been lost; the message gives the re-snapshot path (docs/cdc.md).
    """


@dataclass(frozen=True)
class SlotHealth:
    """The slot as the source sees it.

    Attributes:
        slot: Slot name.
        exists: Whether the slot exists.
        wal_status: ``reserved``, ``extended``, ``unreserved`` or ``lost`` (``lost``: invalidated).
        confirmed_flush_lsn: Where the next read starts (``pg_lsn`` text), or ``None``.
        retained_wal_bytes: WAL the source keeps for this slot (bytes from its ``restart_lsn`` to now).
        active: Whether a session holds the slot now.
    """

    slot: str
    exists: bool
    wal_status: str | None = None
    confirmed_flush_lsn: str | None = None
    retained_wal_bytes: int = 0
    active: bool = False

    @property
    def invalidated(self) -> bool:
        """The server removed WAL the slot needed (``wal_status = 'lost'``): changes may be lost."""
        return self.wal_status == "lost"

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {"slot": self.slot, "exists": self.exists, "wal_status": self.wal_status,
                "confirmed_flush_lsn": self.confirmed_flush_lsn, "retained_wal_bytes": self.retained_wal_bytes,
                "active": self.active}


def resnapshot_path(pipeline: Pipeline) -> str:
    """The documented way back after a lost slot (docs/cdc.md)."""
    return (f"trigger {pipeline.dag_id} with {{\"full_snapshot\": true}}: it drops and recreates slot "
            f"{pipeline.cdc_slot}, reads the whole table in the new slot's snapshot and merges it (the run's reconcile "
            f"marks rows deleted meanwhile); or, to start from nothing, also truncate {pipeline.target} and delete "
            f"the row of {pipeline.name!r} in warehouse_sync.sync_state first")


def check_wal_level(source: psycopg.Connection, pipeline: Pipeline) -> None:
    """Raises :class:`CdcUnavailable` unless the source runs with ``wal_level = logical``."""
    (level,) = source.execute("SHOW wal_level").fetchone()  # type: ignore[misc]
    source.commit()
    if level != "logical":
        raise CdcUnavailable(
            f"pipeline {pipeline.name} has mode: cdc, but its source ({pipeline.source}) runs with "
            f"wal_level={level}; CDC mode needs wal_level=logical. On the source: ALTER SYSTEM SET wal_level = "
            "logical, then restart PostgreSQL (or set mode: cursor for this pipeline).")


def health(source: psycopg.Connection, slot: str) -> SlotHealth:
    """Reads the slot's row of ``pg_replication_slots`` (``exists=False`` when there is none)."""
    row = source.execute(load_sql("cdc/slot_health.sql"), {"slot": slot}).fetchone()
    source.commit()
    if row is None:
        return SlotHealth(slot, exists=False)
    wal_status, confirmed, retained, active = row
    return SlotHealth(slot, True, wal_status, confirmed, int(retained or 0), bool(active))


def log_running_transactions(source: psycopg.Connection) -> bool:
    """Writes a running-transactions record to the WAL now (``pg_log_standby_snapshot()``, PostgreSQL 16+), flushed.

    It lets the confirm at the end of this run move the slot's ``restart_lsn`` to this record (and free the WAL
    before it) without waiting for the server's own, logged every 15 s of activity. The record must be flushed
    before the plan reads its LSN: ``pg_current_wal_lsn()`` is the WAL *write* position, while decoding and
    ``pg_replication_slot_advance`` stop at the *flush* position, so a record still in the WAL buffers was decoded
    only by the next run's confirm, and ``restart_lsn`` stayed one run behind (measured on PostgreSQL 18:
    ``restart_lsn`` equal to the previous run's LSN after every run). Nothing this function could commit would
    flush it (a transaction that wrote no WAL commits asynchronously); the source's WAL writer flushes within
    ``wal_writer_delay`` (200 ms by default; measured 0.01-0.16 s on an idle server), which is waited for here, up
    to :data:`FLUSH_WAIT_SECONDS`.

    Optional: on an older server or without the privilege this does nothing.

    Returns:
        Whether the record was written.
    """
    try:
        with source.transaction():
            (end,) = source.execute("SELECT pg_log_standby_snapshot()::text").fetchone()  # type: ignore[misc]
    except (psycopg.errors.UndefinedFunction, psycopg.errors.InsufficientPrivilege):
        return False
    finally:
        source.commit()
    deadline = time.monotonic() + FLUSH_WAIT_SECONDS
    while True:
        (flushed,) = source.execute(FLUSHED_PAST, (end,)).fetchone()  # type: ignore[misc]
        source.commit()
        if flushed or time.monotonic() >= deadline:
            return True
        time.sleep(0.05)


def current_lsn(source: psycopg.Connection) -> tuple[str, datetime]:
    """The source's WAL write position now (``pg_current_wal_lsn()``, ``pg_lsn`` text) and its clock (UTC)."""
    lsn, now = source.execute(CURRENT_LSN).fetchone()  # type: ignore[misc]
    source.commit()
    return lsn, now


def check_replica_identity(source: psycopg.Connection, pipeline: Pipeline) -> None:
    """Checks that every UPDATE and DELETE of the source table will log the pipeline's key (``relreplident``).

    Usable: ``REPLICA IDENTITY FULL``, or a default (primary key) or index identity whose columns
    include every key column. The fix offered is ``REPLICA IDENTITY USING INDEX`` of a unique index
    over exactly the key (not partial, no expression, not deferrable, columns ``NOT NULL``) when there
    is one, else ``REPLICA IDENTITY FULL`` (every column of the old row is logged: more WAL).

    Raises:
        ReplicaIdentityUnusable: The identity logs nothing or not the whole key; nothing was published.
        TableNotFound: The table does not exist.
    """
    table, key = pipeline.source, pipeline.primary_key
    row = source.execute(load_sql("catalog/replica_identity.sql"), {
        "schema": table.schema, "table": table.name, "key": sorted(key)}).fetchone()
    source.commit()
    if row is None:
        raise TableNotFound(f"table {table} does not exist (or is not visible to this role)")
    identity, columns, candidate = row
    if identity == "f" or (columns is not None and set(key) <= set(columns)):
        return
    name = table_ident(table).as_string(source)
    fix = (f"ALTER TABLE {name} REPLICA IDENTITY USING INDEX {sql.Identifier(candidate).as_string(source)}"
           if candidate else f"ALTER TABLE {name} REPLICA IDENTITY FULL")
    if identity == "n" or columns is None:
        what = ("is REPLICA IDENTITY NOTHING" if identity == "n" else
                "is REPLICA IDENTITY DEFAULT but has no primary key")
        harm = ("publishing it would make PostgreSQL reject every UPDATE and DELETE the application runs on it")
    else:
        what = f"logs only {list(columns)} of an updated or deleted row (its replica identity)"
        harm = f"deletes would arrive without the pipeline's key {list(key)} and be lost"
    raise ReplicaIdentityUnusable(
        f"pipeline {pipeline.name}: source table {table} {what}; {harm}. The table was not added to publication "
        f"{pipeline.cdc_slot}. Fix on the source: {fix}; then run again (or set mode: cursor for this pipeline).")


def ensure_publication(source: psycopg.Connection, pipeline: Pipeline) -> None:
    """Creates the pipeline's publication for its source table, or adds the table to it if missing.

    Raises:
        ReplicaIdentityUnusable: The table's replica identity does not carry the key
            (:func:`check_replica_identity`); nothing is published.
    """
    check_replica_identity(source, pipeline)
    pub = sql.Identifier(pipeline.cdc_slot)
    tables = {(s, t) for s, t in source.execute(PUBLICATION_TABLES, (pipeline.cdc_slot,)).fetchall()}
    (exists,) = source.execute("SELECT count(*) FROM pg_publication WHERE pubname = %s",
                               (pipeline.cdc_slot,)).fetchone()  # type: ignore[misc]
    if not exists:
        source.execute(CREATE_PUBLICATION.format(pub=pub, table=table_ident(pipeline.source)))
        log.info("created publication %s for %s", pipeline.cdc_slot, pipeline.source)
    elif (pipeline.source.schema, pipeline.source.name) not in tables:
        source.execute(ADD_TABLE.format(pub=pub, table=table_ident(pipeline.source)))
    source.commit()


def drop_slot(source: psycopg.Connection, slot: str) -> bool:
    """Drops the slot if it exists (returns whether it did). Its retained WAL is freed at once."""
    dropped = source.execute(DROP_SLOT, (slot,)).fetchall()
    source.commit()
    return bool(dropped)


def snapshot_version(consistent_point: str) -> int:
    """The version (LSN) snapshot rows get: one below the slot's consistent point.

    Thus every change the slot decodes (commit LSN >= the consistent point) is newer.
    """
    return lsn_to_int(consistent_point) - 1


def pending_slot(pipeline: Pipeline) -> str:
    """The slot a ``full_snapshot`` creates beside a live one: ``wsn_<name>`` (at most 63 characters).

    No pipeline's live slot (``ws_<name>``) can have this name.
    """
    return f"wsn_{pipeline.name}"[:63]


def promote_pending(source: psycopg.Connection, pipeline: Pipeline) -> bool:
    """After the snapshot read in :func:`pending_slot` committed in the warehouse: it becomes the live slot.

    Drops the old live slot, copies the pending one under the live name (``pg_copy_logical_replication_slot``:
    the same consistent point, so no change is lost or doubled) and drops the pending one. A rerun after a
    partial swap finishes it.

    Returns:
        Whether there was a pending slot to promote.
    """
    pending = pending_slot(pipeline)
    if not health(source, pending).exists:
        return False
    if drop_slot(source, pipeline.cdc_slot):
        log.info("%s: dropped slot %s, replaced by the new snapshot's", pipeline.name, pipeline.cdc_slot)
    source.execute(COPY_SLOT, (pending, pipeline.cdc_slot))
    source.commit()
    drop_slot(source, pending)
    return True


def drop_stale_pending(source: psycopg.Connection, pipeline: Pipeline) -> bool:
    """Drops the slot of a ``full_snapshot`` that never loaded (it only retains WAL); returns whether there was one."""
    dropped = drop_slot(source, pending_slot(pipeline))
    if dropped:
        log.warning("%s: dropped slot %s of a full_snapshot whose load never committed; changes continue from "
                    "slot %s, which kept them", pipeline.name, pending_slot(pipeline), pipeline.cdc_slot)
    return dropped


def create_slot(source: psycopg.Connection, pipeline: Pipeline, slot: str | None = None) -> str:
    """Creates publication and slot for a snapshot run; returns the slot's consistent point (``pg_lsn`` text).

    Args:
        source: Source connection (no transaction open: PostgreSQL creates a logical slot only outside one
            that has written).
        pipeline: The table's configuration.
        slot: The slot to create: the live one (:attr:`Pipeline.cdc_slot`, the default) or, for a
            ``full_snapshot`` beside a live slot, :func:`pending_slot`.

    An old slot of the same name (a first run, or a full snapshot, that failed before its snapshot was
    loaded) is dropped first. No snapshot is exported: the snapshot's batches read the table as it is
    when each runs (:func:`warehouse_sync.cdc.changes.read_snapshot`), and the slot's changes, all
    newer than the consistent point, are applied over them by the next run.

    Raises:
        CdcUnavailable: ``wal_level`` is not ``logical``, no replication slot is free, or the role may not
            create one.
    """
    name = slot or pipeline.cdc_slot
    check_wal_level(source, pipeline)
    ensure_publication(source, pipeline)
    if drop_slot(source, name):
        log.warning("%s: dropped slot %s left by an earlier snapshot run", pipeline.name, name)
    source.commit()
    try:
        (point,) = source.execute(CREATE_SLOT, (name,)).fetchone()  # type: ignore[misc]
    except psycopg.errors.ConfigurationLimitExceeded as exc:
        source.rollback()
        raise CdcUnavailable(f"pipeline {pipeline.name}: the source has no free replication slot "
                             f"(max_replication_slots): {exc}") from None
    except psycopg.errors.InsufficientPrivilege as exc:
        source.rollback()
        raise CdcUnavailable(f"pipeline {pipeline.name}: the source role may not create a replication slot (it "
                             f"needs REPLICATION or superuser: ALTER ROLE … WITH REPLICATION): {exc}") from None
    source.commit()
    log.info("%s: created slot %s at %s", pipeline.name, name, point)
    return str(point)


def release_wal(source: psycopg.Connection, slot: str, lsn: str) -> None:
    """Advances the slot once more to ``lsn``, where :func:`confirm` put it: ``restart_lsn`` reaches the plan's record.

    The plan's record is the last running-transactions record before ``lsn`` (:func:`log_running_transactions`).

    PostgreSQL takes a slot's next ``restart_lsn`` from the running-transactions records an advance decodes
    (``LogicalIncreaseRestartDecodingForSlot`` in ``src/backend/replication/logical/logical.c``): of the records
    past the confirmed position when the advance began, only the first; of those at or before it, the latest. So
    the confirm to ``lsn`` leaves ``restart_lsn`` at the first record after the previous run's LSN (the server logs
    one every 15 s of activity), and a second advance to the same ``lsn`` finds the plan's record at or before the
    confirmed position and moves ``restart_lsn`` to it (measured on PostgreSQL 18: the WAL kept after a run is then
    what was written since its plan). It decodes in fast-forward mode, without output, about the WAL of this run.
    A cancel by ``statement_timeout`` only leaves that WAL for the next run to release.
    """
    try:
        source.execute(ADVANCE_SLOT, (slot, lsn))
        source.commit()
    except psycopg.errors.QueryCanceled:
        source.rollback()
        log.warning("slot %s: releasing WAL up to %s ran past statement_timeout; the next run releases it", slot, lsn)


def confirm(source: psycopg.Connection, slot: str, lsn: str) -> bool:
    """Confirms that everything that committed before ``lsn`` is in the warehouse.

    Advances the slot's confirmed flush position (and lets the source recycle WAL). Never moves it back.

    Advancing a logical slot decodes the WAL it passes. A step the source's ``statement_timeout``
    cancels is taken in halves (to the LSN midway, which is safe: everything before ``lsn`` is in
    the warehouse), down to :data:`MIN_ADVANCE_BYTES` of WAL; a busy source slows the confirm down
    rather than failing the load after its commit.

    Returns:
        Whether the slot moved (``False`` when it already was at or past ``lsn``: a replayed run).

    Raises:
        SlotLost: The slot is gone.
        psycopg.errors.QueryCanceled: Even a step of :data:`MIN_ADVANCE_BYTES` ran past ``statement_timeout``.
    """
    now = health(source, slot)
    if not now.exists:
        raise SlotLost(f"slot {slot} vanished before it could be confirmed at {lsn}")
    target = lsn_to_int(lsn)
    done = lsn_to_int(now.confirmed_flush_lsn) if now.confirmed_flush_lsn else None
    if done is not None and done >= target:
        return False
    step = target
    while True:
        try:
            source.execute(ADVANCE_SLOT, (slot, lsn_to_text(step)))
            source.commit()
        except psycopg.errors.QueryCanceled:
            source.rollback()
            if done is None or step - done <= MIN_ADVANCE_BYTES:
                raise
            step = done + (step - done) // 2
            log.warning("slot %s: advancing ran past statement_timeout; advancing in smaller steps (to %s)", slot,
                        lsn_to_text(step))
            continue
        if step >= target:
            return True
        done, step = step, target
