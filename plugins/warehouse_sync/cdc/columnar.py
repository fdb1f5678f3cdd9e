"""A slice of pgoutput change messages decoded straight into Arrow columns, with no object per change.

:mod:`.decode` reads one message at a time into Python values; at 100 000 changes that per-change
work (a Python loop over each change's columns, then rows transposed into columns) was most of a CDC
run's task CPU. This module takes a run of consecutive messages (:func:`stage_messages`: the
messages between two ``Relation`` messages, at most ``cdc.chunk_changes``) and, when every change
in it has the common shape, decodes the run column by column with numpy over one buffer (a run
holds at most ``RUN_BYTES`` of messages, so its memory is bounded whatever the values' sizes):

* every change is an insert (``I`` … ``N``), an update that sends no old tuple (``U`` … ``N``) or
  a delete of a key (``D`` … ``K``), of the run's one relation, and every value is text (``t``) or
  NULL (``n``): what a table under the default replica identity sends when no value is an
  unchanged TOASTed one;
* per column, each message's position advances by its value's length (read as a big-endian
  ``int32`` at the positions of all messages at once); the values' bytes are gathered into one
  buffer and become an Arrow ``string`` array (UTF-8 checked by Arrow's cast).

Anything else (an update that changed the key or carries the old row, ``REPLICA IDENTITY FULL``, an
unchanged TOASTed value, a truncated message) returns ``None`` and the caller decodes the run
message by message as before, with the same result. Transaction messages (``B``, ``C``) give each
change its transaction's commit LSN and time.

The format is the one :mod:`.decode` documents ("Logical Replication Message Formats", protocol
version 1). The staged layout is :mod:`.changes`' (``_op``, ``_lsn``, ``_seq``, ``_commit_time``,
``_unchanged``, then the synced columns as text).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pyarrow as pa

from warehouse_sync.cdc.decode import Relation

__all__ = ["RUN_BYTES", "stage_messages"]

RUN_BYTES = 8 << 20
"""The bytes of messages one run holds at most (the caller stages a run once it reaches this): the
gather's index takes 4 bytes per byte of one column's values, so a run's decode stays within about
7x this. A run of more than twice this (a message of a very large value) is decoded message by message."""

_I, _U, _D, _N, _K = (ord(c) for c in "IUDNK")
_TEXT, _NULL = ord("t"), ord("n")
_OPS = np.array(["", "D", "I", "U"], dtype=object)  # by (kind == D) + 2 * (kind == I) + 3 * (kind == U)


def stage_messages(changes: Sequence[bytes], begins: Sequence[tuple[int, int, datetime]],
                   commit: tuple[int, datetime | None], relation: Relation, kept: list[int], schema: pa.Schema,
                   seq: int) -> pa.Table | None:
    """The staged rows of a run of change messages, or ``None`` when a change in it is not of the common shape.

    Args:
        changes: Consecutive change messages (``I``, ``U``, ``D``) of the slot, in stream order.
        begins: The transactions that began inside the run: ``(index of their first change in
            changes, commit LSN, commit time)``, ascending.
        commit: ``(commit LSN, commit time)`` of the transaction the run starts in.
        relation: The relation every change in the run must be of (the last ``R`` before the run).
        kept: The positions of the synced columns in the relation (the pipeline's ``columns:``).
        schema: The staged files' schema (:func:`.changes.staged_schema`: ``_op``, ``_lsn``, ``_seq``,
            ``_commit_time``, ``_unchanged``, then the synced columns as text, in ``kept``'s order).
        seq: The ``_seq`` of the run's first change.

    Returns:
        A table of the staged layout, one row per change in stream order (``_seq`` from ``seq``),
        values in the source's text form; ``None``: decode the run message by message.
    """
    count = len(changes)
    if count == 0:
        return None
    lengths = np.fromiter(map(len, changes), np.int64, count)
    if lengths.min() < 8 or lengths.sum() > 2 * RUN_BYTES:
        return None
    starts = np.zeros(count, np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    buf = np.frombuffer(b"".join(changes), np.uint8)
    kinds = buf[starts]
    try:
        values = _columns(buf, starts, lengths, kinds, relation, kept)
    except (IndexError, pa.ArrowInvalid):
        return None  # a message ends early or holds bytes that are not UTF-8: the message-by-message decode names it
    if values is None:
        return None
    firsts = np.fromiter((at for at, _, _ in begins), np.int64, len(begins))
    transaction = np.searchsorted(firsts, np.arange(count), side="right")  # 0: the one the run started in
    lsns = np.fromiter((commit[0], *(lsn for _, lsn, _ in begins)), np.int64, len(begins) + 1)
    times = pa.array([commit[1], *(time for _, _, time in begins)], schema.field("_commit_time").type)
    ops = _OPS[(kinds == _D) + 2 * (kinds == _I) + 3 * (kinds == _U)]
    arrays = [pa.array(ops, pa.string()), pa.array(lsns[transaction], pa.int64()),
              pa.array(np.arange(seq, seq + count, dtype=np.int64), pa.int64()), times.take(pa.array(transaction)),
              pa.nulls(count, pa.string())]
    return pa.Table.from_arrays([*arrays, *values], schema=schema)


def _columns(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray, kinds: np.ndarray, relation: Relation,
             kept: list[int]) -> list[pa.Array] | None:
    """Each synced column's values of the changes at ``starts`` (Arrow strings), or ``None`` (not the common shape).

    Raises:
        IndexError: A message ends before its last value.
    """
    markers = buf[starts + 5]
    if not (((kinds == _D) & (markers == _K)) | ((kinds != _D) & (markers == _N))).all():
        return None  # an update with its old key or row (K, O), a delete of a whole row (O)
    if not (_be(buf, starts + 1, 4) == relation.oid).all():
        return None
    width = len(relation.columns)
    if not (_be(buf, starts + 6, 2) == width).all():
        return None
    pos, ends = starts + 8, starts + lengths
    wanted = set(kept)
    found: dict[int, pa.Array] = {}
    for column in range(width):
        if (pos >= ends).any():
            raise IndexError
        kind = buf[pos]
        text = kind == _TEXT
        if not (text | (kind == _NULL)).all():
            return None  # an unchanged TOASTed value (u): the message-by-message path lists it in _unchanged
        if (text & (pos + 5 > ends)).any():
            raise IndexError
        sizes = np.where(text, _be(buf, np.where(text, pos + 1, 0), 4), 0)
        if (sizes < 0).any() or (text & (pos + 5 + sizes > ends)).any():
            raise IndexError
        if column in wanted:
            found[column] = _strings(buf, pos + 5, sizes, text)
        pos = np.where(text, pos + 5 + sizes, pos + 1)
    if not (pos == ends).all():
        raise IndexError  # the message has bytes after its tuple
    return [found[i] for i in kept]


def _be(buf: np.ndarray, at: np.ndarray, size: int) -> np.ndarray:
    """Big-endian unsigned integers of ``size`` bytes at each of ``at``, as ``int64``."""
    value = np.zeros(len(at), np.int64)
    for i in range(size):
        value = (value << 8) | buf[at + i]
    return value


def _strings(buf: np.ndarray, starts: np.ndarray, sizes: np.ndarray, valid: np.ndarray) -> pa.Array:
    """The byte spans ``[starts, starts + sizes)`` of ``buf`` as an Arrow ``string`` array, NULL where not ``valid``."""
    count = len(starts)
    offsets = np.zeros(count + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    index = np.repeat((starts - offsets[:-1]).astype(np.int32), sizes)  # the run is under 2 GiB
    index += np.arange(offsets[-1], dtype=np.int32)
    data = buf[index]
    validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    binary = pa.Array.from_buffers(pa.large_binary(), count, [validity, pa.py_buffer(offsets), pa.py_buffer(data)])
    return binary.cast(pa.large_string()).cast(pa.string())
