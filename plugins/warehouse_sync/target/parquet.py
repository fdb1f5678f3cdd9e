"""The one Parquet writer of staged files: temporary name, rename, orphan removal, one compression.

Both modes stage through it: cursor mode's extract writes one file per keyset batch, page by page
(:mod:`warehouse_sync.sync.extract`); CDC writes one file per chunk of changes
(:mod:`warehouse_sync.cdc.changes`). A file is written under a temporary name in its window folder
(:func:`.staging.temporary_name`) and renamed to its final name only once complete, so a reader
never sees half a file and a retried task overwrites its own output. A failed attempt removes its
temporary file; a killed one cannot, so each successful write removes the temporary files earlier
attempts of the same file left (:func:`.staging.remove_orphans`), never another file's. On a local
folder a file is owner-only (``0600``) from its creation, and its folder ``0700``
(:func:`warehouse_sync.storage.make_private`).

Staged files are snappy-compressed (:data:`COMPRESSION`), one setting for every staged file: measured
on TPC-H SF 1 (``make bench-phases``, all rows in memory), snappy writes orders / lineitem in 0.85 /
3.31 s against zstd's 1.03 / 5.97 s and reads them in 0.90 / 1.44 s against 1.14 / 4.43 s, for files
of 63 / 241 MiB against 47 / 194 MiB (docs/decisions/0007-snappy-staging-files.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse_sync.storage import make_private
from warehouse_sync.target.staging import remove_orphans, temporary_name

log = logging.getLogger(__name__)

COMPRESSION = "snappy"


@contextmanager
def parquet_file(path: Any, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """``with parquet_file(path, schema) as writer:`` a ``ParquetWriter`` whose file appears only on success.

    The file appears at ``path`` only when the block ends without an error.

    Args:
        path: The final path (``pathlib.Path`` or ``ObjectStoragePath``); its folder is created.
        schema: The file's Arrow schema; every table written must have it.

    Yields:
        The writer (``write_table``, ``write_batch``); closed by this function.

    Raises:
        Whatever the block or the storage raises; the temporary file is then removed (best effort).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    make_private(path.parent, folder=True)
    temporary = path.parent / temporary_name(path.name)
    try:
        with temporary.open("wb") as handle:
            make_private(temporary)  # still empty: no source row is ever readable by others
            with pq.ParquetWriter(handle, schema, compression=COMPRESSION) as writer:
                yield writer
        temporary.rename(path)
    except BaseException:
        try:
            temporary.unlink(missing_ok=True)
        except OSError as exc:  # the original error matters more; the next attempt removes it
            log.warning("could not remove %s: %s", temporary, exc)
        raise
    remove_orphans(path.parent, path.name)  # what killed attempts of this file left


def write_table(path: Any, table: pa.Table) -> int:
    """Writes ``table`` as the file ``path`` (:func:`parquet_file`).

    Returns:
        The file's size (bytes).
    """
    with parquet_file(path, table.schema) as writer:
        writer.write_table(table)
    return int(path.stat().st_size)
