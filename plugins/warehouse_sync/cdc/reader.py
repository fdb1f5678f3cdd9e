"""Reading a pipeline's slot in bounded slices, without moving it.

A backlog is never read in one call: one call under the source's ``statement_timeout`` that decodes
hours of changes could time out on every retry while the slot keeps WAL. So the reader makes a
**temporary copy** of the live slot (``pg_copy_logical_replication_slot(…, temporary => true)``: the
same ``restart_lsn`` and confirmed position, owned by this session, dropped at its end) and consumes
the copy with ``pg_logical_slot_get_binary_changes(copy, upto, nchanges)``: each call returns at most
``cdc.chunk_changes`` messages (plus the rest of the transaction that reached the bound: the server
checks the bound only after each decoded commit) and the next call continues right after it. The
slices are contiguous, so together they are exactly the changes up to ``upto``, as one call would
return them. The live slot is not touched: :func:`warehouse_sync.cdc.slot.confirm` moves it after the
warehouse commit (decision 0009), and a failed extract simply starts over from a new copy. Advancing
a logical slot decodes the WAL it passes, so the reader also reports where each slice ended, and the
load advances the live slot through those positions in steps, each as bounded as a slice.

A slice that the source's ``statement_timeout`` cancels while the server decodes it (before it returned a
message: the copy has not moved) is asked for again with half the bound, down to :data:`MIN_SLICE`
messages; a busy source slows a backlog's read down rather than failing it on every retry.

The copy needs one free replication slot (``max_replication_slots``) while the read runs. Its name,
``wsr_<pipeline>_<8 hex>`` (at most 63 characters), is unique per read, so an extract and a reconcile of one
pipeline can read at the same time.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import psycopg

from warehouse_sync.cdc.decode import Change, Relation, decode
from warehouse_sync.cdc.slot import CdcUnavailable, drop_slot, health
from warehouse_sync.config import Pipeline
from warehouse_sync.db.statements import load_sql

log = logging.getLogger(__name__)
MIN_SLICE = 100
"""The fewest messages a slice asks for after ``statement_timeout`` cancelled bigger ones."""


def read_slot_name(pipeline: Pipeline) -> str:
    """A fresh name for one read's temporary copy: ``wsr_<name>_<8 hex>``, at most 63 characters.

    No live (``ws_``) or pending (``wsn_``) slot can have it.
    """
    return f"wsr_{pipeline.name}"[:54] + "_" + uuid.uuid4().hex[:8]


def slot_messages(source: psycopg.Connection, pipeline: Pipeline, upto_lsn: str | None,
                  checkpoints: list[str] | None = None) -> Iterator[bytes]:
    """The slot's ``pgoutput`` messages of transactions committed before ``upto_lsn``, read in bounded slices.

    Args:
        source: Source connection (each slice is one statement in a transaction of its own).
        pipeline: Its slot and publication (:attr:`Pipeline.cdc_slot`) and ``cdc.chunk_changes`` (the bound).
        upto_lsn: The run's LSN (``pg_lsn`` text), or ``None`` for every pending change.
        checkpoints: Receives where each slice but the last ended (the copy's confirmed position, ``pg_lsn``
            text): advancing a logical slot decodes the WAL it passes, so the load confirms the live slot
            through these in steps, each as bounded as a slice.

    Yields:
        Each message's bytes, in commit order, as ``pg_logical_slot_peek_binary_changes`` of the live slot
        would return them.

    Raises:
        CdcUnavailable: No replication slot is free for the copy.
        psycopg.errors.UndefinedObject: The live slot does not exist.
    """
    copy, bound = read_slot_name(pipeline), pipeline.cdc.chunk_changes
    try:
        source.execute(load_sql("cdc/copy_read_slot.sql"), {"slot": pipeline.cdc_slot, "copy": copy})
        source.commit()
    except psycopg.errors.ConfigurationLimitExceeded as exc:
        source.rollback()
        raise CdcUnavailable(f"pipeline {pipeline.name}: the source has no free replication slot for the read's "
                             f"temporary copy of {pipeline.cdc_slot} (max_replication_slots): {exc}") from None
    slices = 0
    try:
        while True:
            returned = 0
            try:
                with source.transaction(), source.cursor(name=f"ws_slice_{uuid.uuid4().hex[:8]}") as cur:
                    cur.itersize = bound
                    cur.execute(load_sql("cdc/read_slice.sql"), {"copy": copy, "upto": upto_lsn, "nchanges": bound,
                                                                 "publication": pipeline.cdc_slot})
                    for (data,) in cur:
                        returned += 1
                        yield bytes(data)
            except psycopg.errors.QueryCanceled:
                # Cancelled while decoding (before its first message), the copy did not move: read less at once.
                if returned or bound <= MIN_SLICE:
                    raise
                bound = max(MIN_SLICE, bound // 2)
                log.warning("%s: a slice of slot %s ran past the source's statement_timeout before returning a "
                            "message; reading slices of at most %d messages from here", pipeline.name,
                            pipeline.cdc_slot, bound)
                continue
            slices += 1
            log.debug("%s: slice %d of slot %s: %d message(s)", pipeline.name, slices, pipeline.cdc_slot, returned)
            if returned < bound:  # the call stopped at upto (or the end of the WAL), not at the bound
                break
            if checkpoints is not None:
                ended = health(source, copy).confirmed_flush_lsn
                if ended:
                    checkpoints.append(ended)
    finally:
        _drop_copy(source, copy)
    log.info("%s: read slot %s up to %s in %d slice(s) of at most %d message(s)", pipeline.name, pipeline.cdc_slot,
             upto_lsn or "now", slices, bound)


def pending_keys(source: psycopg.Connection, pipeline: Pipeline) -> set[tuple[str, ...]]:
    """The primary keys (text form, key order) of every change waiting in the slot, not yet applied.

    After a run confirmed the slot at its plan's LSN, these are the changes committed since: a
    difference they explain is in flight, and the next run applies it. The slot itself is not moved
    (:mod:`.reader` reads a temporary copy).
    """
    keys: set[tuple[str, ...]] = set()
    relations: dict[int, Relation] = {}
    for data in slot_messages(source, pipeline, None):
        message = decode(data)
        if isinstance(message, Relation):
            relations[message.oid] = message
        elif isinstance(message, Change):
            names = [c.name for c in relations[message.relation_oid].columns]
            where = [names.index(k) for k in pipeline.primary_key]
            for values in (message.old, message.new):
                if values is not None and all(isinstance(values[i], str) for i in where):
                    keys.add(tuple(str(values[i]) for i in where))
    source.commit()
    return keys


def _drop_copy(source: psycopg.Connection, copy: str) -> None:
    """Drops the temporary copy now (the session's end would too: a failure here only logs)."""
    try:
        source.rollback()
        drop_slot(source, copy)
    except psycopg.Error as exc:
        log.warning("temporary slot %s is dropped when this session ends (dropping it now failed: %s)", copy, exc)


__all__ = ["read_slot_name", "slot_messages", "pending_keys"]
