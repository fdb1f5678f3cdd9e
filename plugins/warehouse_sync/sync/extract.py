"""Extract: one keyset batch of the source, streamed page by page into one Parquet file.

Each page is ``COPY (SELECT … ORDER BY cursor, pk LIMIT n) TO STDOUT (FORMAT csv)`` that
continues strictly after the last key read, parsed by Arrow's CSV reader into the table's exact
Arrow schema (:mod:`warehouse_sync.db.catalog`) and appended to a ``ParquetWriter``. Memory is one
page, whatever the size of the window or the table. All pages of a batch are read in one
``REPEATABLE READ`` snapshot.

A page is bounded by rows (``page_size``) and by bytes (``page_bytes``, of the CSV text): PostgreSQL
sends a ``COPY … TO STDOUT`` one row per message, so the page keeps whole rows until it holds
``page_bytes``, and the rows after are received but not kept (the next page starts after the last
row kept). The next page's ``LIMIT`` is then the rows that fitted, growing back (doubling, up to
``page_size``) while pages stay under the byte bound, so little is sent twice.

In a snapshot into a new target, the extract also copies each page into the run's build table in
the warehouse as it writes it (:mod:`warehouse_sync.target.build`): the warehouse transaction commits after the
file has its final name, so a build table never holds rows of a batch that has no file.

The file is written by the one staged-file writer (:func:`warehouse_sync.target.parquet.parquet_file`:
temporary name, rename, orphans of killed attempts removed, snappy) at its deterministic path
``<root>/<pipeline>/<window>/batch-00000.parquet`` (:mod:`warehouse_sync.target.staging`'s layout),
so a retried task overwrites its own output and a reader never sees half a file.

Phases timed (:class:`~warehouse_sync.model.Extracted` ``phases``, seconds): ``read`` (COPY out and
CSV parse, in the prefetching thread), ``csv_to_arrow`` (part of ``read``), ``wait_for_source`` (this
thread waiting for the next page), ``parquet_write``, ``build_copy`` (COPY into the build table).
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from queue import Full, Queue
from typing import Any, Protocol

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from warehouse_sync.config import Pipeline
from warehouse_sync.db.catalog import Column, arrow_schema
from warehouse_sync.db.csv_text import parse_csv_page
from warehouse_sync.db.statements import bind_row, idents, load_sql, placeholders, row_of, table_ident
from warehouse_sync.model import Batch, Extracted, StagedFile, TableRef, Window
from warehouse_sync.sync.keyset import batch_filter, keyset_columns
from warehouse_sync.target.build import clear_batch
from warehouse_sync.target.bulk_copy import copy_batches
from warehouse_sync.target.parquet import parquet_file
from warehouse_sync.target.staging import batch_file_name, window_folder_name
from warehouse_sync.timing import Phases

log = logging.getLogger(__name__)


class StoragePath(Protocol):
    """What extract needs of a path: ``pathlib.Path`` and Airflow's ``ObjectStoragePath`` both fit."""

    name: str

    @property
    def parent(self) -> Any: ...  # noqa: D102
    def open(self, mode: str = ...) -> Any: ...  # noqa: D102
    def rename(self, target: Any) -> Any: ...  # noqa: D102
    def stat(self) -> Any: ...  # noqa: D102
    def unlink(self, missing_ok: bool = ...) -> None: ...  # noqa: D102
    def exists(self) -> bool: ...  # noqa: D102
    def iterdir(self) -> Any: ...  # noqa: D102
    def __truediv__(self, other: str) -> Any: ...


def batch_path(root: StoragePath, pipeline: Pipeline, window: Window, batch_index: int) -> Any:
    """Deterministic file location for (table, window, batch).

    The location: ``<root>/<pipeline>/<start>__<end>/batch-NNNNN.parquet``.
    """
    return root / pipeline.name / window_folder_name(window) / batch_file_name(batch_index)


_CSV_COLUMN = re.compile(r"CSV column #(\d+)")


class ValueNotHeld(ValueError):
    """A page holds a value its column's exact Arrow type cannot hold.

    E.g. ``NaN`` of a ``numeric(p,s)``, ``infinity`` or a BC date, ``24:00:00``: the batch is staged as text instead.
    """


def read_pages(
    conn: psycopg.Connection, pipeline: Pipeline, columns: list[Column], window: Window, batch: Batch,
    phases: Phases | None = None, schema: pa.Schema | None = None,
) -> Iterator[pa.Table]:
    """Yields the batch's rows as Arrow tables of at most ``pipeline.page_size`` rows, in keyset order.

    A page also ends once it holds ``pipeline.page_bytes`` bytes of CSV text (at least one row): the
    rows the source sent after that are dropped and read again by the next page.

    Args:
        conn: Source connection (the caller holds its transaction).
        pipeline: The table's configuration.
        columns: Source columns (:func:`warehouse_sync.db.catalog.describe_source`).
        window: The run's window.
        batch: The keyset range to read.
        phases: Where to add the ``csv_to_arrow`` seconds, if given.
        schema: The pages' schema: ``arrow_schema(columns)`` (the default) or its text form
            (``arrow_schema(columns, as_text=True)``).

    Raises:
        ValueNotHeld: A value does not fit the exact schema (never raised for the text form).
    """
    schema = arrow_schema(columns) if schema is None else schema
    as_text = schema == arrow_schema(columns, as_text=True)
    keys = keyset_columns(pipeline, window)
    where, params = batch_filter(pipeline, window, batch)
    last: tuple[Any, ...] | None = None
    limit = pipeline.page_size
    while True:
        after: sql.Composable = sql.SQL("")
        page_params = {**params, "page_size": limit}
        if last is not None:
            after = sql.SQL("AND {} > {}").format(row_of(keys), placeholders("after", len(keys)))
            page_params.update(bind_row("after", last))
        query = load_sql(
            "sync/extract_page.sql", columns=idents(schema.names), table=table_ident(pipeline.source),
            batch=where, after=after, keys=idents(keys),
        )
        data, cut = _read_page(conn, query, page_params, pipeline.page_bytes)
        if not data:
            return
        parse_started = time.perf_counter()
        try:
            page = parse_csv_page(data, schema)
        except pa.ArrowInvalid as exc:
            if as_text:
                raise
            found = _CSV_COLUMN.search(str(exc))  # Arrow's message names the value too: only the column is told
            index = int(found.group(1)) if found else -1
            what = f"column {schema.field(index).name!r} ({schema.field(index).type})" \
                if 0 <= index < len(schema) else "a column"
            raise ValueNotHeld(f"{pipeline.source} batch {batch.index}: {what} holds a value its Arrow type "
                               "cannot hold") from exc
        if phases is not None:
            phases.add("csv_to_arrow", time.perf_counter() - parse_started)
        yield page
        if not cut and page.num_rows < limit:
            return
        last = tuple(page.column(k)[page.num_rows - 1].as_py() for k in keys)
        limit = page.num_rows if cut else min(pipeline.page_size, limit * 2)


def _read_page(conn: psycopg.Connection, query: sql.Composed | sql.SQL, params: dict[str, Any],
               max_bytes: int) -> tuple[bytes, bool]:
    """Runs one page's ``COPY … TO STDOUT`` and keeps its rows up to ``max_bytes``.

    PostgreSQL sends each row of a ``COPY … TO STDOUT`` as one ``CopyData`` message, which psycopg
    yields as one chunk: the kept bytes are whole rows (a quoted value may hold newlines).

    Returns:
        The CSV text of the rows kept (at least one when the page has any), and whether rows after
        them were dropped because the page had reached ``max_bytes``.
    """
    buffer = io.BytesIO()
    cut = False
    with conn.cursor() as cur, cur.copy(query, params) as copy:
        for row in copy:
            if buffer.tell() >= max_bytes:
                cut = True  # drained, not kept: the COPY must finish before the next statement
                continue
            buffer.write(row)
    return buffer.getvalue(), cut


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


@contextmanager
def prefetched(pages: Iterator[pa.Table], depth: int = 2) -> Iterator[Iterator[pa.Table]]:
    """Reads ``pages`` in a worker thread, at most ``depth`` pages ahead of the caller.

    The source then produces the next keyset page while this thread writes the last one to Parquet
    (and the build table): Arrow's CSV parse, Parquet write and pgpq encode release the GIL. Memory
    grows by ``depth`` pages. An error of the reader is raised to the caller at the page it would
    have produced; when the caller stops early, the reader stops after its current page and is
    joined before this returns, so the source connection is never used by two threads at once.
    """
    queue: Queue[Any] = Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not offer(page):
                    return
        except BaseException as exc:  # handed to the caller, who raises it
            offer(_Failed(exc))
            return
        offer(_DONE)

    def consume() -> Iterator[pa.Table]:
        while (item := queue.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield item

    reader = threading.Thread(target=produce, name="extract-prefetch", daemon=True)
    reader.start()
    try:
        yield consume()
    finally:
        stop.set()
        reader.join()
        close = getattr(pages, "close", None)
        if close is not None:
            close()


def _written(pages: Iterator[pa.Table], writer: pq.ParquetWriter, phases: Phases) -> Iterator[pa.Table]:
    """Passes pages on after appending each to the Parquet file."""
    for page in pages:
        with phases.timed("parquet_write"):
            writer.write_table(page)
        yield page


def extract_batch(
    conn: psycopg.Connection,
    pipeline: Pipeline,
    columns: list[Column],
    window: Window,
    batch: Batch,
    root: StoragePath,
    warehouse: psycopg.Connection | None = None,
    build: TableRef | None = None,
) -> Extracted:
    """Reads one batch from the source and writes it to its Parquet file (and its snapshot build table).

    The file has the columns' exact Arrow types (:func:`warehouse_sync.db.catalog.arrow_schema`). A
    batch holding a value one of them cannot hold (``NaN`` of a ``numeric(p,s)``, ``±infinity``, a
    BC date or a year past 9999, ``24:00:00``) is read again and staged with those columns as
    PostgreSQL's text form (``as_text``), which the load copies back exactly.

    Args:
        conn: Source connection (left with no open transaction).
        pipeline: The table's configuration.
        columns: Source columns (:func:`warehouse_sync.db.catalog.describe_source`).
        window: The run's window.
        batch: The keyset range to read.
        root: Staging root (``ObjectStoragePath``: a local folder, ``s3://…``, …).
        warehouse: Warehouse connection, with ``build`` (committed once the file has its name).
        build: The run's snapshot build table (:func:`warehouse_sync.target.build.prepare`): the
            batch's rows are also copied into it, after deleting what an earlier attempt copied.

    Returns:
        The written file (one :class:`~warehouse_sync.model.StagedFile`), rows, seconds and phases. A
        batch whose rows all moved out of the window since planning writes an empty file with the
        schema. Temporary files of this batch that earlier attempts left are removed; other batches'
        are not touched.

    Raises:
        ValueError: ``build`` without ``warehouse``.
    """
    try:
        return _extract_batch(conn, pipeline, columns, window, batch, root, warehouse, build, arrow_schema(columns))
    except ValueNotHeld as exc:
        log.info("%s; staging the batch's columns as their text form", exc)
        return _extract_batch(conn, pipeline, columns, window, batch, root, warehouse, build,
                              arrow_schema(columns, as_text=True))


def _extract_batch(conn: psycopg.Connection, pipeline: Pipeline, columns: list[Column], window: Window,
                   batch: Batch, root: StoragePath, warehouse: psycopg.Connection | None, build: TableRef | None,
                   schema: pa.Schema) -> Extracted:
    """:func:`extract_batch` with the file's schema given (the exact one or its text form)."""
    started = time.monotonic()
    phases = Phases()
    target = batch_path(root, pipeline, window, batch.index)
    rows = 0
    if build is not None and warehouse is None:
        raise ValueError("a build table needs the warehouse connection")
    conn.commit()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        with conn.transaction(), parquet_file(target, schema) as writer:
            conn.execute("SET TRANSACTION READ ONLY")
            source_pages = phases.timed_iter("read", read_pages(conn, pipeline, columns, window, batch, phases,
                                                                  schema))
            with prefetched(source_pages) as read:
                pages = _written(phases.timed_iter("wait_for_source", read), writer, phases)
                if build is None or warehouse is None:
                    rows = sum(page.num_rows for page in pages)
                else:
                    if target.exists():  # an earlier attempt may have committed its copy
                        clear_batch(warehouse, build, *batch_filter(pipeline, window, batch),
                                    f"{pipeline.target} batch {batch.index}")
                    upstream = Phases()
                    copy_started = time.perf_counter()
                    with warehouse.cursor() as cur:
                        parts = (part for page in pages for part in page.to_batches())
                        rows = copy_batches(cur, table_ident(build), columns, upstream.timed_iter("pages", parts))
                    phases.add("build_copy", time.perf_counter() - copy_started - upstream.seconds("pages"))
        if warehouse is not None:
            warehouse.commit()  # only once the file has its final name
    except BaseException:
        if warehouse is not None:
            warehouse.rollback()
        raise
    finally:
        conn.isolation_level = None
    size = int(target.stat().st_size)
    seconds = time.monotonic() - started
    log.info("%s %s batch %d: %d rows, %d bytes in %.2f s -> %s%s",
             pipeline.source, window, batch.index, rows, size, seconds, target,
             f" and build table {build}" if build is not None else "")
    return Extracted(batch.index, (StagedFile(str(target), rows, size, batch.index),), rows, seconds,
                     phases.to_dict())
