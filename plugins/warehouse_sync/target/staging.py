"""Staged files: where extract puts a window's Parquet files, and how they are cleaned up.

Layout under the staging root (:func:`warehouse_sync.storage.staging_root`)::

    <root>/<pipeline>/<start>__<end>/batch-00000.parquet        one file per batch of the window
    <root>/<pipeline>/<start>__<end>/.batch-00000.parquet.<uuid hex>.tmp   while batch 0 is written

``<start>`` and ``<end>`` are the window's bounds as ``20261120T020000000000Z`` (UTC, microseconds);
a snapshot's folder is ``begin__<end>``. Two cleanups keep the root from growing:

* :func:`remove_orphans`: a killed extract leaves its temporary file behind; the rerun of the same
  batch removes the temporary files of that batch (never another batch's: other mapped extracts of
  the window may be writing theirs at the same moment).
* :func:`remove_expired`: the daily reconcile DAG's ``clean_staging`` task removes the folders of
  windows that ended more than ``staging_retention_days`` ago and reports what is left.

Everything here uses only what ``pathlib.Path`` and Airflow's ``ObjectStoragePath`` (a local folder,
``s3://…``) share: ``/``, ``name``, ``exists``, ``is_dir``, ``iterdir``, ``stat().st_size`` and
``st_mtime``, ``unlink`` and ``rmdir`` (on an empty folder; object stores have no empty folders, so
there the folder is gone once its last file is).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from warehouse_sync.model import Window

log = logging.getLogger(__name__)

STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
UNBOUNDED_START = "begin"
SEPARATOR = "__"


def _stamp(value: datetime | None) -> str:
    if value is None:
        return UNBOUNDED_START
    return (value.astimezone(timezone.utc) if value.tzinfo else value).strftime(STAMP_FORMAT)


def window_folder_name(window: Window) -> str:
    """The folder name of a window: ``<start>__<end>`` (``begin__<end>`` for a snapshot), UTC."""
    return f"{_stamp(window.start)}{SEPARATOR}{_stamp(window.end)}"


def window_end_of(folder_name: str) -> datetime | None:
    """The window end (UTC) that a folder name written by :func:`window_folder_name` carries.

    Args:
        folder_name: A folder's last path component, e.g. ``20261120T000000000000Z__20261120T020000000000Z``
            or ``begin__20261120T000000000000Z``.

    Returns:
        The window's exclusive end (timezone-aware UTC), or ``None`` if the name is not a window
        folder's (such a folder is never removed by :func:`remove_expired`).
    """
    start, sep, end = folder_name.partition(SEPARATOR)
    if not sep or not start or SEPARATOR in end:
        return None
    try:
        if start != UNBOUNDED_START:
            datetime.strptime(start, STAMP_FORMAT)
        return datetime.strptime(end, STAMP_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def batch_file_name(batch_index: int) -> str:
    """``batch-00007.parquet`` for batch 7: the final name of a batch's file."""
    return f"batch-{batch_index:05d}.parquet"


def temporary_name(final_name: str) -> str:
    """A new, unique temporary name for the file ``final_name``: ``.batch-00007.parquet.<uuid hex>.tmp``."""
    return f".{final_name}.{uuid.uuid4().hex}.tmp"


def is_temporary_for(name: str, final_name: str) -> bool:
    """Whether ``name`` is a temporary file of ``final_name`` (of any attempt)."""
    return name.startswith(f".{final_name}.") and name.endswith(".tmp")


def is_temporary_of(name: str, batch_index: int) -> bool:
    """Whether ``name`` is a temporary file of batch ``batch_index`` (of any attempt)."""
    return is_temporary_for(name, batch_file_name(batch_index))


def remove_orphans(folder: Any, batch_index: int | str, keep: str | None = None) -> list[str]:
    """Removes the temporary files of one file that earlier, killed attempts left in its window folder.

    Only files named ``.<final name>.*.tmp`` are touched: the other batches of the window are
    extracted concurrently by other mapped tasks.

    Args:
        folder: The window folder (``pathlib.Path`` or ``ObjectStoragePath``).
        batch_index: The batch whose orphans to remove, or the file's final name.
        keep: A file name to leave alone (the caller's own temporary file, if it still has one).

    Returns:
        The names of the files removed. Best effort: a folder that does not exist or cannot be
        listed, or a file that cannot be removed, is logged and skipped (the next attempt, or
        :func:`remove_expired`, gets it), never raised: the batch's own file is already in place.
    """
    final_name = batch_file_name(batch_index) if isinstance(batch_index, int) else batch_index
    removed: list[str] = []
    try:
        children = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return removed
    except OSError as exc:
        log.warning("could not list %s for orphaned temporary files: %s", folder, exc)
        return removed
    for child in children:
        if child.name != keep and is_temporary_for(child.name, final_name):
            try:
                child.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("could not remove orphaned temporary file %s: %s", child, exc)
                continue
            removed.append(child.name)
    if removed:
        log.info("removed %d orphaned temporary file(s) of %s in %s: %s", len(removed), final_name, folder,
                 ", ".join(removed))
    return removed


@dataclass(frozen=True)
class StagingCleanup:
    """What :func:`remove_expired` removed and what it left.

    Attributes:
        cutoff: Windows that ended before this instant (UTC) were due for removal.
        retention_days: The retention applied (days).
        removed_windows: Names of the window folders removed, oldest window end first.
        removed_files: Files removed (count).
        removed_bytes: Bytes removed.
        kept_windows: Window folders (or other entries) left (count).
        kept_files: Files left under the pipeline's folder (count).
        kept_bytes: Bytes left under the pipeline's folder: the pipeline's staging size.
        errors: One message per folder that could not be removed (it is kept and counted as kept).
    """

    cutoff: datetime
    retention_days: int
    removed_windows: tuple[str, ...] = ()
    removed_files: int = 0
    removed_bytes: int = 0
    kept_windows: int = 0
    kept_files: int = 0
    kept_bytes: int = 0
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (XCom, audit detail): every attribute, ``cutoff`` as ISO text."""
        return {"cutoff": self.cutoff.isoformat(), "retention_days": self.retention_days,
                "removed_windows": list(self.removed_windows), "removed_files": self.removed_files,
                "removed_bytes": self.removed_bytes, "kept_windows": self.kept_windows,
                "kept_files": self.kept_files, "kept_bytes": self.kept_bytes, "errors": list(self.errors)}


def _files(folder: Any) -> Iterator[tuple[Any, int, float]]:
    """Every file under ``folder`` (recursively) with its size (bytes) and modification time (epoch s)."""
    for child in folder.iterdir():
        if child.is_dir():
            yield from _files(child)
        else:
            info = child.stat()
            yield child, int(info.st_size or 0), float(info.st_mtime or 0)


def _remove_folder(folder: Any, files: list[tuple[Any, int, float]]) -> None:
    """Removes the listed files, then ``folder`` and its subfolders if they are empty."""
    for path, _, _ in files:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    _remove_empty(folder)


def _remove_empty(folder: Any) -> None:
    try:
        for child in list(folder.iterdir()):
            if child.is_dir():
                _remove_empty(child)
        if not any(True for _ in folder.iterdir()):
            folder.rmdir()
    except (FileNotFoundError, NotADirectoryError):
        pass  # an object store drops a "folder" with its last file


def _oldest_first(entry: Any) -> tuple[datetime, str]:
    end = window_end_of(entry.name)
    return (end if end is not None else datetime.max.replace(tzinfo=timezone.utc)), entry.name


def remove_expired(root: Any, pipeline_name: str, retention_days: int, now: datetime | None = None) -> StagingCleanup:
    """Removes the window folders of one pipeline whose window ended more than ``retention_days`` ago.

    A folder is removed when its window end (from its name, :func:`window_end_of`) is before
    ``now - retention_days`` **and** none of its files was written after that instant: the files of
    an old window that a backfill or a cleared run is staging right now are kept until they are as
    old. Folders whose name is not a window's are never removed. Removing what is already gone is
    not an error, so running it again removes nothing more and reports the same size left.

    Args:
        root: The staging root (``pathlib.Path`` or ``ObjectStoragePath``: a local folder, ``s3://…``).
        pipeline_name: The pipeline whose folder ``<root>/<pipeline_name>`` is cleaned.
        retention_days: Days a window's files are kept after its window end (>= 0).
        now: The current time (timezone-aware; default: the clock, UTC).

    Returns:
        What was removed (window folder names, files, bytes) and what is left (windows, files, bytes).
        A folder that fails to be removed is kept, counted as kept and named in ``errors``.
    """
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=retention_days)
    removed: list[str] = []
    removed_files = removed_bytes = kept_windows = kept_files = kept_bytes = 0
    errors: list[str] = []
    folder = root / pipeline_name
    entries = sorted(folder.iterdir(), key=_oldest_first) if folder.is_dir() else []
    for entry in entries:
        try:
            files = list(_files(entry)) if entry.is_dir() else [(entry, int(entry.stat().st_size or 0), 0.0)]
        except FileNotFoundError:
            continue  # removed meanwhile
        size = sum(s for _, s, _ in files)
        end = window_end_of(entry.name) if entry.is_dir() else None
        newest = max((m for _, _, m in files), default=0.0)
        if end is not None and end < cutoff and newest < cutoff.timestamp():
            try:
                _remove_folder(entry, files)
            except OSError as exc:
                errors.append(f"{entry.name}: {type(exc).__name__}: {exc}")
                log.warning("could not remove staged window %s: %s", entry, exc)
            else:
                removed.append(entry.name)
                removed_files += len(files)
                removed_bytes += size
                continue
        kept_windows += 1
        kept_files += len(files)
        kept_bytes += size
    log.info("%s: removed %d window folder(s), %d file(s), %d bytes ended before %s; kept %d file(s), %d bytes",
             folder, len(removed), removed_files, removed_bytes, cutoff.isoformat(), kept_files, kept_bytes)
    return StagingCleanup(cutoff=cutoff, retention_days=retention_days, removed_windows=tuple(removed),
                          removed_files=removed_files, removed_bytes=removed_bytes, kept_windows=kept_windows,
                          kept_files=kept_files, kept_bytes=kept_bytes, errors=tuple(errors))
