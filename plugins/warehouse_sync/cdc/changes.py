"""CDC extract: the initial snapshot and each run's changes, in bounded chunks, into Parquet files.

Every staged file has the same layout, whether it holds snapshot rows or decoded changes:

==================  =====================  ==========================================================
column              Arrow type             meaning
==================  =====================  ==========================================================
``_op``             string                 ``I`` insert (snapshot rows too), ``U`` update, ``D`` delete,
                                           ``K`` update that changed the key (the row staged just
                                           before it is the ``D`` of the old key)
``_lsn``            int64                  the version: commit LSN of the change's transaction, or one
                                           below the slot's consistent point for snapshot rows
``_seq``            int64                  order of the change in the run's stream (commit order)
``_commit_time``    timestamp[us, UTC]     commit time at the source (NULL for snapshot rows)
``_unchanged``      string                 columns the change did not carry, as a PostgreSQL
                                           ``text[]`` literal (unchanged TOAST values; columns a
                                           relation lacked before an ``ADD COLUMN``), or NULL
each column         string                 the source's text form of the value (NULL is NULL)
==================  =====================  ==========================================================

Values stay in PostgreSQL's own text form: the warehouse casts them with the target column's type,
so every type round-trips exactly. A file holds at most ``cdc.chunk_changes`` rows; a relation
message that changes the columns starts a new file. Changes up to the LSN fixed by ``plan`` are read
in slices of at most ``cdc.chunk_changes`` messages from a temporary copy of the slot
(:mod:`warehouse_sync.cdc.reader`: no call decodes the whole backlog), and the slot itself is not moved:
:func:`warehouse_sync.cdc.slot.confirm` does that after the warehouse commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from warehouse_sync.cdc.columnar import RUN_BYTES, stage_messages
from warehouse_sync.cdc.decode import CHANGE_KINDS, UNCHANGED, Begin, Change, Relation, Truncate, decode
from warehouse_sync.cdc.reader import slot_messages
from warehouse_sync.cdc.slot import resnapshot_path, snapshot_version
from warehouse_sync.config import Pipeline
from warehouse_sync.db.batches import key_range_filter
from warehouse_sync.db.catalog import Column
from warehouse_sync.db.csv_text import parse_csv_page
from warehouse_sync.db.statements import idents, table_ident
from warehouse_sync.model import Batch, StagedFile, TableRef, Window
from warehouse_sync.target.build import clear_batch
from warehouse_sync.target.parquet import write_table
from warehouse_sync.target.staging import batch_file_name, window_folder_name

log = logging.getLogger(__name__)

META_FIELDS = [pa.field("_op", pa.string()), pa.field("_lsn", pa.int64()), pa.field("_seq", pa.int64()),
               pa.field("_commit_time", pa.timestamp("us", tz="UTC")), pa.field("_unchanged", pa.string())]
META_NAMES = [f.name for f in META_FIELDS]
PASSED_KINDS = frozenset({b"C", b"O", b"Y"})
COPY_SNAPSHOT = sql.SQL("COPY (SELECT {columns} FROM {table} WHERE {where}) TO STDOUT (FORMAT csv)")
COPY_BUILD = sql.SQL("COPY {build} ({columns}) FROM STDIN (FORMAT csv)")


class TruncateSeen(RuntimeError):
    """The source table was truncated: a truncate is not replicated row by row; re-snapshot."""


@dataclass(frozen=True)
class StagedChanges:
    """What one CDC extract wrote.

    Attributes:
        files: The staged Parquet files, in stream order.
        changes: Rows staged (changes, or snapshot rows).
        transactions: Source transactions the changes came from.
        oldest_commit, newest_commit: Commit times (UTC ISO text) of the first and last change, or ``None``.
        seconds: Wall time.
        checkpoints: Where each slice but the last ended (``pg_lsn`` text, ascending): the load confirms
            the slot through them in steps (:mod:`.reader`).
        phases: Seconds by phase of a change read: ``read`` (waiting for the slot's messages: the
            server's decoding and the transfer), ``decode`` (pgoutput messages into Python values) and
            ``stage`` (rows into Arrow and Parquet files); empty for a snapshot.
    """

    files: tuple[StagedFile, ...]
    changes: int
    transactions: int
    oldest_commit: str | None
    newest_commit: str | None
    seconds: float
    checkpoints: tuple[str, ...] = ()
    phases: dict[str, float] = field(default_factory=dict)


def staged_schema(names: Iterable[str]) -> pa.Schema:
    """The staged files' Arrow schema: the metadata fields, then each of ``names`` as text."""
    return pa.schema([*META_FIELDS, *(pa.field(n, pa.string()) for n in names)])


def pg_text_array(names: Iterable[str]) -> str | None:
    """A PostgreSQL ``text[]`` literal of ``names`` (``None`` when empty)."""
    quoted = ['"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names]
    return "{" + ",".join(quoted) + "}" if quoted else None


@dataclass
class _Writer:
    """Buffers rows of one column set and writes them as numbered Parquet files under ``folder``.

    Files are written by :func:`warehouse_sync.target.parquet.write_table`: temporary name, rename, snappy.
    """

    folder: Any
    chunk: int
    columns: tuple[str, ...] = ()
    rows: list[tuple] = field(default_factory=list)
    written: list[StagedFile] = field(default_factory=list)

    def add(self, columns: tuple[str, ...], row: tuple) -> None:
        if columns != self.columns:
            self.flush()
            self.columns = columns
        self.rows.append(row)
        if len(self.rows) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        schema = staged_schema(self.columns)
        rows, self.rows = self.rows, []
        self.write(pa.Table.from_arrays([pa.array(values, type=f.type) for f, values in zip(schema, zip(*rows))],
                                        schema=schema))

    def write(self, table: pa.Table) -> None:
        """Writes ``table`` (the staged layout) as the next file, after the rows buffered before it."""
        self.flush()
        index = len(self.written)
        path = self.folder / batch_file_name(index)
        size = write_table(path, table)
        self.written.append(StagedFile(str(path), table.num_rows, size, index))

    @property
    def staged(self) -> int:
        """Rows written to files so far."""
        return sum(f.rows for f in self.written)


def _folder(root: Any, pipeline: Pipeline, window: Window) -> Any:
    folder = root / pipeline.name / window_folder_name(window)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def read_snapshot(source: psycopg.Connection, pipeline: Pipeline, columns: list[Column], consistent_point: str,
                  batch: Batch, window: Window, root: Any, warehouse: psycopg.Connection | None = None,
                  build: TableRef | None = None) -> StagedChanges:
    """Reads one batch (a key range) of the source table, as it is now, into staged files (and the build table).

    One ``COPY (SELECT …) TO STDOUT (FORMAT csv)`` in one short transaction per batch, in parallel
    with the others, none held across tasks: a retried batch reads its range again, finished batches
    are not read again. Rows are ``I`` with the version one below the slot's consistent point
    (:func:`warehouse_sync.cdc.slot.snapshot_version`), created before any batch was read: every
    change the slot decodes is newer, so the next run's changes, applied over rows read at any time
    after the slot was created, win (the watermark rule of Netflix's DBLog and Debezium's
    incremental snapshots, with the LSN version guard as the watermark). A row changed while the
    batches ran is read as it was then and set right by its change in the next run; until then the
    reconcile counts its key as pending, not drift.

    Each page of at most ``cdc.chunk_changes`` rows (and about ``page_bytes`` of CSV text) becomes one
    staged file and, with ``build``, is sent as the source's own CSV text into the run's build table
    (:mod:`warehouse_sync.target.build`: the warehouse's input functions read the source's text form,
    as the merge's casts do), in one warehouse transaction that commits after the last file has its
    name. A retry first deletes what an earlier attempt of the batch copied.

    Args:
        source: Source connection.
        pipeline: The table's configuration (``cdc.chunk_changes`` rows per file, ``page_bytes``).
        columns: The columns to read (the pipeline's selection).
        consistent_point: The slot's consistent point (``pg_lsn`` text), from the plan.
        batch: The key range (:func:`warehouse_sync.db.batches.key_batches`).
        window: The run's window (names the staging folder).
        root: The staging root.
        warehouse: Warehouse connection, with ``build`` (left with no open transaction).
        build: The run's build table (:func:`warehouse_sync.target.build.build_for`), or ``None``.

    Raises:
        ValueError: ``build`` without ``warehouse``.
    """
    if build is not None and warehouse is None:
        raise ValueError("a build table needs the warehouse connection")
    started = time.monotonic()
    names = tuple(c.name for c in columns)
    folder = _folder(root, pipeline, window) / f"snapshot-{batch.index:05d}"
    folder.mkdir(parents=True, exist_ok=True)
    writer = _Writer(folder, pipeline.cdc.chunk_changes)
    version = snapshot_version(consistent_point)
    ranges, params = key_range_filter(pipeline.primary_key, batch)
    where = sql.SQL(" AND ").join([sql.SQL("TRUE"), *ranges])
    query = COPY_SNAPSHOT.format(columns=idents(names), table=table_ident(pipeline.source), where=where)
    strings = pa.schema([pa.field(n, pa.string()) for n in names])
    source.commit()
    with ExitStack() as stack:
        into = None
        if build is not None and warehouse is not None:
            warehouse.commit()
            stack.enter_context(warehouse.transaction())  # commits after the last file has its name
            if (folder / batch_file_name(0)).exists():  # an earlier attempt may have committed its copy
                clear_batch(warehouse, build, where, params, f"{pipeline.name} snapshot batch {batch.index}")
            wcur = stack.enter_context(warehouse.cursor())
            into = stack.enter_context(wcur.copy(COPY_BUILD.format(build=table_ident(build), columns=idents(names)),
                                                 writer=QueuedLibpqWriter(wcur)))
        with source.transaction(), source.cursor() as cur, cur.copy(query, params) as out:
            page, rows = bytearray(), 0
            for row in out:  # one CopyData message per row
                page += row
                rows += 1
                if rows >= writer.chunk or len(page) >= pipeline.page_bytes:
                    _snapshot_page(bytes(page), strings, version, writer, into)
                    page, rows = bytearray(), 0
            if rows:
                _snapshot_page(bytes(page), strings, version, writer, into)
    seq = writer.staged
    log.info("%s: snapshot batch %d (slot at %s): %d rows in %d file(s)%s", pipeline.name, batch.index,
             consistent_point, seq, len(writer.written), f" and build table {build}" if build else "")
    return StagedChanges(tuple(writer.written), seq, 0, None, None, time.monotonic() - started)


def _snapshot_page(data: bytes, strings: pa.Schema, version: int, writer: _Writer, into: Any) -> None:
    """One page of snapshot rows (CSV text): into the build table as it is, and into one staged file."""
    if into is not None:
        into.write(data)
    values = parse_csv_page(data, strings)
    rows, seq = values.num_rows, writer.staged
    meta = [pa.repeat("I", rows), pa.repeat(pa.scalar(version, pa.int64()), rows),
            pa.array(range(seq, seq + rows), pa.int64()), pa.nulls(rows, META_FIELDS[3].type),
            pa.nulls(rows, pa.string())]
    writer.write(pa.Table.from_arrays([*meta, *values.columns], schema=staged_schema(strings.names)))


def read_changes(source: psycopg.Connection, pipeline: Pipeline, upto_lsn: str, window: Window,
                 root: Any) -> StagedChanges:
    """Decodes the slot's changes of transactions committed before ``upto_lsn`` into staged files.

    The slot is never moved (:mod:`.reader` reads a temporary copy). An update that changed the key is
    staged as a delete of the old key followed by a ``K`` row of the new key. Only the columns the
    pipeline syncs are staged (:meth:`Pipeline.selects`): a column its ``columns:`` selection leaves
    out never reaches a file.

    Raises:
        TruncateSeen: The table was truncated (the message gives the re-snapshot path).
        DecodeError: A message the decoder does not know.
    """
    started = time.monotonic()
    writer = _Writer(_folder(root, pipeline, window), pipeline.cdc.chunk_changes)
    relations: dict[int, Relation] = {}
    kept_of: dict[int, tuple[list[int], tuple[str, ...]]] = {}
    commit: tuple[int, Any] = (0, None)  # the current transaction's commit LSN and time
    seq, transactions = 0, 0
    oldest: datetime | None = None
    newest: datetime | None = None
    checkpoints: list[str] = []
    clock, timed = time.perf_counter, {"decode": 0.0, "stage": 0.0}
    relation: Relation | None = None  # the last Relation message's
    run: list[bytes] = []  # change messages not staged yet, all after that Relation message
    begins: list[tuple[int, int, Any]] = []  # transactions that began inside the run: (index in run, LSN, time)
    run_commit, run_bytes = commit, 0

    def stage_run() -> None:
        nonlocal seq, run, begins
        if not run:
            return
        at = clock()
        table = None
        if relation is not None and relation.oid in kept_of:
            kept, names = kept_of[relation.oid]
            table = stage_messages(run, begins, run_commit, relation, kept, staged_schema(names), seq)
        if table is not None:
            timed["decode"] += clock() - at
            at = clock()
            writer.write(table)
            seq += table.num_rows
            timed["stage"] += clock() - at
        else:  # not the common shape (module docstring of .columnar): message by message
            seq = _stage_each(run, begins, run_commit, relations, kept_of, writer, seq, timed)
        run, begins = [], []

    for data in slot_messages(source, pipeline, upto_lsn, checkpoints):
        kind = data[:1]
        if kind in CHANGE_KINDS:
            if not run:
                run_commit, run_bytes = commit, 0
            run.append(data)
            run_bytes += len(data)
            if len(run) >= pipeline.cdc.chunk_changes or run_bytes >= RUN_BYTES:
                stage_run()
            continue
        if kind == b"B":
            message = decode(data)
            assert isinstance(message, Begin)
            commit = (message.final_lsn, message.commit_time)
            if run:
                begins.append((len(run), *commit))
            oldest = oldest or message.commit_time
            newest = message.commit_time
            transactions += 1
            continue
        if kind in PASSED_KINDS:  # commit, origin, type: nothing to stage
            continue
        message = decode(data)  # Relation, Truncate, or a message the decoder does not know (DecodeError)
        if isinstance(message, Relation) and message == relation:
            continue  # sent again at the start of each slice (a new decoding session): the run goes on
        stage_run()
        if isinstance(message, Relation):
            relations[message.oid] = relation = message
            # only the synced columns (the pipeline's ``columns:`` selection) reach a staged file
            kept = [i for i, c in enumerate(message.columns) if pipeline.selects(c.name)]
            kept_of[message.oid] = kept, tuple(message.columns[i].name for i in kept)
        elif isinstance(message, Truncate):
            raise TruncateSeen(
                f"pipeline {pipeline.name}: {pipeline.source} was truncated at the source (transaction committed "
                f"{commit[1]}); a truncate is not applied row by row. Re-snapshot: {resnapshot_path(pipeline)}.")
    stage_run()
    flushed = clock()
    writer.flush()
    timed["stage"] += clock() - flushed
    seconds = time.monotonic() - started
    phases = {"read": round(max(seconds - timed["decode"] - timed["stage"], 0.0), 3),
              "decode": round(timed["decode"], 3), "stage": round(timed["stage"], 3)}
    return StagedChanges(tuple(writer.written), seq, transactions, oldest.isoformat() if oldest else None,
                         newest.isoformat() if newest else None, seconds, tuple(checkpoints), phases)


def _stage_each(run: list[bytes], begins: list[tuple[int, int, Any]], commit: tuple[int, Any],
                relations: dict[int, Relation], kept_of: dict[int, tuple[list[int], tuple[str, ...]]],
                writer: _Writer, seq: int, timed: dict[str, float]) -> int:
    """Decodes and stages a run of change messages one by one (any shape); returns the next ``_seq``.

    An update that changed the key is staged as a delete of the old key followed by a ``K`` row of the new key.
    """
    clock, starts = time.perf_counter, iter(begins)
    following = next(starts, None)
    lsn, commit_time = commit
    for index, data in enumerate(run):
        while following is not None and following[0] == index:  # the transaction this change is in
            _, lsn, commit_time = following
            following = next(starts, None)
        decoded = clock()
        message = decode(data)
        staged = clock()
        timed["decode"] += staged - decoded
        assert isinstance(message, Change)
        relation = relations[message.relation_oid]
        kept, names = kept_of[message.relation_oid]
        key_changed = message.op == "U" and message.old is not None and _key_changed(relation, message)
        if message.op == "D" or key_changed:
            assert message.old is not None  # a delete carries its old key
            writer.add(names, _row("D", lsn, seq, commit_time, _only(message.old, kept)))
            seq += 1
        if message.op != "D":
            assert message.new is not None  # an insert or update carries its new tuple
            op = "K" if key_changed else message.op  # K: the new key of the delete just before (apply.py)
            writer.add(names, _row(op, lsn, seq, commit_time, _only(message.new, kept), names))
            seq += 1
        timed["stage"] += clock() - staged
    return seq


def _key_changed(relation: Relation, change: Change) -> bool:
    """Whether an update's old key differs from its new one.

    Only then does pgoutput send ``K``/``O`` under the default replica identity; under FULL it always sends
    ``O``.
    """
    assert change.new is not None and change.old is not None
    return any(c.is_key and change.old[i] != change.new[i] for i, c in enumerate(relation.columns))


def _only(values: tuple[object, ...], kept: list[int]) -> tuple[object, ...]:
    """The values at the positions ``kept`` (the synced columns of the relation)."""
    return values if len(kept) == len(values) else tuple(values[i] for i in kept)


def _row(op: str, lsn: int, seq: int, commit_time: Any, values: tuple[object, ...],
         names: tuple[str, ...] = ()) -> tuple:
    if UNCHANGED not in values:  # the common case: every value sent
        return (op, lsn, seq, commit_time, None, *values)
    unchanged = [names[i] for i, v in enumerate(values) if v is UNCHANGED] if names else []
    clean = tuple(None if v is UNCHANGED else v for v in values)
    return (op, lsn, seq, commit_time, pg_text_array(unchanged), *clean)


__all__ = ["StagedChanges", "TruncateSeen", "META_NAMES", "read_snapshot", "read_changes",
           "pg_text_array", "staged_schema"]
